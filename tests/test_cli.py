import json
import subprocess
import sys

import pytest

from supernas import get_space
from supernas.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_spaces_lists_every_space_with_range(capsys):
    code, out, _ = run(capsys, "spaces")
    assert code == 0
    assert "attentivenas" in out and "203.4 - 1939.3" in out and "4.403e+11" in out
    assert all(name in out for name in ("fpnas-l0", "fpnas-l1", "fpnas-l2"))


def test_flops_of_published_model_and_json(capsys, tmp_path):
    code, out, _ = run(capsys, "flops", "--space", "attentivenas", "--arch", "a0")
    assert code == 0 and out.startswith("203.4 MFLOPs")
    arch = get_space("fpnas-l0").sample(rng=0)
    f = tmp_path / "a.json"
    f.write_text(arch.to_json())
    code, out, _ = run(capsys, "flops", "--space", "fpnas-l0", "--arch", str(f), "--json")
    d = json.loads(out)
    assert code == 0 and d["arch"] == arch.to_dict() and d["mflops"] > 0 and d["params"] > 0


def test_sample_respects_flops_range_and_seed(capsys):
    code, out, _ = run(capsys, "sample", "--space", "attentivenas", "-n", "5", "--min-mflops", "400",
                       "--max-mflops", "450", "--seed", "3")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 5 and all(400 <= d["mflops"] <= 450 for d in lines)
    _, again, _ = run(capsys, "sample", "--space", "attentivenas", "-n", "5", "--min-mflops", "400",
                      "--max-mflops", "450", "--seed", "3")
    assert again == out


@pytest.mark.parametrize("argv, expected", [
    (["flops", "--space", "nope", "--arch", "{}"], "unknown space 'nope'"),
    (["flops", "--space", "attentivenas", "--arch", "{\"resolution\": "], "not valid JSON"),
    (["flops", "--space", "attentivenas", "--arch", "{\"resolution\": 100}"], "missing"),
    (["sample", "--space", "attentivenas", "--max-mflops", "100"], "203.4 to 1939.3"),
    (["sample", "--space", "attentivenas", "-n", "0"], "-n must be at least 1"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, expected):
    code, out, err = run(capsys, *argv)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_out_of_range_choice_names_field(capsys):
    d = get_space("attentivenas").smallest().to_dict()
    d["mb4.kernel"] = 9
    code, _, err = run(capsys, "flops", "--space", "attentivenas", "--arch", json.dumps(d))
    assert code == 2 and "'mb4.kernel'" in err and "9" in err and "allowed: 3, 5" in err


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "supernas.cli", "flops", "--space", "attentivenas", "--arch", "a6"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("709.0 MFLOPs")


def test_every_flag_and_argument_has_help_text():
    import argparse

    from supernas.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {a.option_strings or a.dest}" for name, parser in commands.choices.items()
               for a in parser._actions if not a.help and not isinstance(a, argparse._HelpAction)]
    assert not missing, f"say what these take: {missing}"
