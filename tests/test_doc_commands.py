"""Every shell example in README.md and docs/*.md parses: each `supernas ...` line (also under
`torchrun ... -m supernas.cli` and as `$ supernas ...` in a transcript) with the CLI's own parser,
each `python bench/...` line with that bench's parse_args, and their key=value settings against the
command's config schema (a renamed key, even one still read with a DeprecationWarning, fails), so
that a renamed flag, command or key fails here before a reader meets it."""
from __future__ import annotations

import contextlib
import importlib
import io
import re
import shlex
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from supernas.cli import parse_args
from supernas.config import SCHEMAS, SupernetConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.S | re.M)
STAGE2 = {"search", "predictor", "export", "import"}  # their key=value settings are data.KEY=VALUE


@dataclass
class Command:
    where: str  # file:line
    line: str  # as the doc shows it (continuations joined)
    tool: str  # "supernas" or a bench's name
    argv: list[str]


def _logical_lines(block: str) -> list[tuple[int, str]]:
    """(offset of the first line, text) with `\\` continuations joined; a transcript's `$ ` dropped."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for i, raw in enumerate(block.splitlines()):
        if not pending:
            start = i
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        out.append((start, line[2:] if line.startswith("$ ") else line))
    return out


def _expand(token: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), "X"), token)


def block_commands(block: str) -> list[tuple[int, str, str, list[str]]]:
    """(line offset, line, tool, argv) of the supernas and bench commands of one fenced block, with
    the block's shell variables (NAME=value, a for loop's first value) substituted."""
    env: dict[str, str] = {}
    found = []
    for offset, line in _logical_lines(block):
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:  # prose or output with an unbalanced quote
            continue
        loop = re.match(r"for (\w+) in (\S+)", " ".join(tokens))
        if loop:
            env[loop.group(1)] = loop.group(2)
            continue
        for part in _split_commands(tokens):
            cmd = _command(part, env)
            if cmd is not None:
                found.append((offset, line, *cmd))
    return found


def doc_commands() -> list[Command]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for block in FENCE.finditer(text):
            if block.group(1) in ("python", "yaml", "json"):
                continue
            first = text[:block.start(2)].count("\n") + 1
            for offset, line, tool, argv in block_commands(block.group(2)):
                found.append(Command(f"{doc.relative_to(ROOT)}:{first + offset}", line, tool, argv))
    return found


def _split_commands(tokens: list[str]) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for t in tokens:
        if t in ("&&", ";", "||", "do", "then"):
            parts.append([])
        else:
            parts[-1].append(t.rstrip(";"))
    return [p for p in parts if p]


def _command(tokens: list[str], env: dict[str, str]) -> tuple[str, list[str]] | None:
    """(tool, argv) of a command line, or None when it runs neither supernas nor a bench."""
    if len(tokens) == 1 and re.fullmatch(r"[A-Za-z_]\w*=\S*", tokens[0]):  # a shell variable
        name, _, value = tokens[0].partition("=")
        env[name] = _expand(value, env)
        return None
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", tokens[0]):  # an environment prefix
        tokens = tokens[1:]
    tokens = [_expand(t, env) for t in tokens if t != "..."]  # '...': more settings of the reader's
    if not tokens:
        return None
    if tokens[0] == "supernas":
        return "supernas", tokens[1:]
    if tokens[0] in ("torchrun", "python", "python3") and "supernas.cli" in tokens:
        i = tokens.index("supernas.cli")
        if tokens[i - 1] == "-m":
            return "supernas", tokens[i + 1:]
    if tokens[0] in ("python", "python3") and len(tokens) > 1 and tokens[1].startswith("bench/"):
        return Path(tokens[1]).stem, tokens[2:]
    return None


COMMANDS = doc_commands()


def _parse(parse, cmd: Command):
    """`parse(argv)`, or the test fails naming the doc line and argparse's message."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parse(cmd.argv)
    except SystemExit:
        pytest.fail(f"{cmd.where}: `{cmd.line}` does not parse: {err.getvalue().strip()}")


def cli_parse(argv: list[str]):
    """The CLI's arguments as `supernas.cli` reads them (numbers too: shell variables stand in the
    docs' lines, so their flags are read as text here)."""
    return parse_args(argv, numbers=False)


def _settings(where: str, schema: type, config: "str | None", overrides: list[str]) -> None:
    """Load the settings as the command would, failing on an unknown or renamed key."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            load_config(schema, config, overrides, require=False)
    except Exception as e:  # noqa: BLE001 - whatever it is, the doc line is wrong
        pytest.fail(f"{where}: {type(e).__name__}: {e}")


def test_the_docs_have_commands_of_each_kind():
    tools = {c.tool for c in COMMANDS}
    assert "supernas" in tools and {"fpnas_vs_parsec", "fpnas_variants", "gpu_suite"} <= tools
    assert any(c.line.startswith("torchrun") for c in COMMANDS)
    assert any("$m" not in c.line and " a0 " in f" {' '.join(c.argv)} " for c in COMMANDS)  # the for loop


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c.tool == "supernas"], ids=lambda c: c.where)
def test_supernas_command_of_the_docs_parses(cmd, monkeypatch):
    monkeypatch.chdir(ROOT)  # the docs' configs/... paths are the checkout's
    args = _parse(cli_parse, cmd)
    overrides = list(getattr(args, "overrides", None) or [])
    if args.command in SCHEMAS:
        config = args.config
        if config is not None and "=" in config and not Path(config).is_file():  # as the CLI reads it
            config, overrides = None, [config, *overrides]
        if config is not None and config.startswith(("configs/", "src/")):
            assert Path(config).is_file(), f"{cmd.where}: no config file {config}"
        elif config is not None and not Path(config).is_file():
            config = None  # a file the reader's run wrote (RUN/config.yaml): its keys are not checkable here
        _settings(cmd.where, SCHEMAS[args.command], config, overrides)
    elif args.command == "predictor" and args.action == "import":  # predictor import attentivenas FILE --out P
        assert args.run == "attentivenas" and len(overrides) == 1 and args.out, cmd.where
    elif args.command in STAGE2:
        if args.command == "search":  # search.KEY=VALUE: the strategy's settings (docs/search.md)
            from supernas.search import SearchSettings

            SearchSettings().with_options([o for o in overrides if o.startswith("search.")])
            overrides = [o for o in overrides if not o.startswith("search.")]
        assert all(o.startswith("data.") for o in overrides), f"{cmd.where}: stage 2 takes data.KEY=VALUE only"
        _settings(cmd.where, SupernetConfig, None, overrides)


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c.tool != "supernas"], ids=lambda c: c.where)
def test_bench_command_of_the_docs_parses(cmd, bench, monkeypatch):
    monkeypatch.chdir(ROOT)
    path = ROOT / "bench" / f"{cmd.tool}.py"
    assert path.is_file(), f"{cmd.where}: no bench/{cmd.tool}.py"
    sys.modules.pop(cmd.tool, None)
    mod = importlib.import_module(cmd.tool)
    args = _parse(mod.parse_args, cmd)
    # the FP-NAS benches: the searches' and retrains' configs as the bench builds them
    if cmd.tool == "fpnas_vs_parsec":
        _check(cmd.where, lambda: (mod.search_config(args, "parsec"), mod.retrain_config(args, "fpnas")))
    elif cmd.tool == "fpnas_variants":
        for name in args.variants:
            _check(cmd.where, lambda: (mod.search_config(args, name, args.seeds[0]),
                                       mod.retrain_config(args, name, args.seeds[0])))


def _check(where: str, build) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            build()
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"{where}: {type(e).__name__}: {e}")


def test_a_renamed_key_or_flag_fails():
    """The checks above fail on what a rename leaves behind in a doc."""
    cmd = Command("x.md:1", "", "supernas", ["search", "runs/x", "--budgets", "2", "--populations", "8"])
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        _parse(cli_parse, cmd)
    cmd = Command("x.md:1", "", "supernas", ["fpnas", "c.yaml", "search.epochs=3", "--dry-runs"])
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        _parse(cli_parse, cmd)
    with pytest.raises(pytest.fail.Exception, match="x.md:1"):  # search.epochs moved to train.epochs
        _settings("x.md:1", SCHEMAS["fpnas"], None, ["search.epochs=3"])
    with pytest.raises(pytest.fail.Exception, match="x.md:1"):
        _settings("x.md:1", SCHEMAS["train"], None, ["train.epoch=3"])


def test_the_extraction_reads_continuations_variables_loops_and_prefixes():
    block = ("R=runs/x   # a run\nfor m in a0 a1; do\n  supernas export $R --arch $m \\\n    --out $R/$m  # each\ndone\n"
             "OMP_NUM_THREADS=1 supernas spaces && supernas sample --space attentivenas -n 2\n"
             "torchrun --nproc-per-node 8 -m supernas.cli train c.yaml train.epochs=2\n"
             "python bench/sampler.py --small ...\n# supernas not-a-command\n")
    found = [(tool, argv) for _, _, tool, argv in block_commands(block)]
    assert found == [("supernas", ["export", "runs/x", "--arch", "a0", "--out", "runs/x/a0"]),
                     ("supernas", ["spaces"]), ("supernas", ["sample", "--space", "attentivenas", "-n", "2"]),
                     ("supernas", ["train", "c.yaml", "train.epochs=2"]), ("sampler", ["--small"])]
