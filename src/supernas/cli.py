"""The `supernas` command.

Each subcommand is a function `cmd_<name>(args)`; bad input raises `SupernasError`, which
`main` prints as one line on stderr with exit status 2 (never a traceback).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Callable, Sequence

import numpy as np

from .errors import RunInterrupted, SupernasError, SupernasWarning

COMMANDS: dict[str, Callable[[argparse.Namespace], int | None]] = {}


def command(fn: Callable[[argparse.Namespace], int | None]) -> Callable[[argparse.Namespace], int | None]:
    COMMANDS[fn.__name__.removeprefix("cmd_")] = fn
    return fn


# ---------------------------------------------------------------------------- spaces and costs
@command
def cmd_spaces(args: argparse.Namespace) -> None:
    from .spaces import CostModel, get_space, list_spaces

    rows = []
    for name in list_spaces():
        space = get_space(name)
        cost = CostModel(space, args.num_classes)
        lo, hi = cost.mflops([space.smallest(), space.largest()])
        rows.append({"space": name, "dims": len(space.dims), "size": space.size, "min_mflops": round(float(lo), 1),
                     "max_mflops": round(float(hi), 1)})
    if args.json:
        for r in rows:
            print(json.dumps({**r, "size": str(r["size"])}))
        return
    print(f"{'space':<19}{'dims':>6}{'size (Archs)':>16}{'MFLOPs range':>22}   ({args.num_classes} classes)")
    for r in rows:
        rng = f"{r['min_mflops']:.1f} - {r['max_mflops']:.1f}"
        print(f"{r['space']:<19}{r['dims']:>6}{r['size']:>16.3e}{rng:>22}")


@command
def cmd_flops(args: argparse.Namespace) -> None:
    from .spaces import CostModel, get_space, load_arch

    space = get_space(args.space)
    arch = load_arch(space, args.arch)
    mflops, params = (float(v[0]) for v in CostModel(space, args.num_classes).costs_indices(space.to_indices(arch)))
    if args.json:
        print(json.dumps({"space": space.name, "mflops": mflops, "params": int(params), "arch": arch.to_dict()}))
    else:
        print(f"{mflops:.1f} MFLOPs, {params / 1e6:.2f} M params ({space.name}, {args.num_classes} classes)")


@command
def cmd_sample(args: argparse.Namespace) -> None:
    from .sampling import sample_in_range
    from .spaces import CostModel, get_space

    space = get_space(args.space)
    cost = CostModel(space, args.num_classes)
    rng = np.random.default_rng(args.seed)
    lo = -np.inf if args.min_mflops is None else args.min_mflops
    hi = np.inf if args.max_mflops is None else args.max_mflops
    idx = sample_in_range(space, cost, rng, args.n, lo, hi)
    mflops, params = cost.costs_indices(idx)
    for arch, m, p in zip(space.from_indices(idx), mflops, params):
        print(json.dumps({"arch": arch.to_dict(), "mflops": round(float(m), 3), "params": int(p)}))


# ---------------------------------------------------------------------------- configs
@command
def cmd_config(args: argparse.Namespace) -> None:
    from .config import SCHEMAS, describe, load_config

    schema = SCHEMAS[args.schema]
    if args.file is not None and "=" in args.file and not os.path.exists(args.file):  # no file: settings alone
        args.file, args.overrides = None, [args.file, *args.overrides]
    cfg = load_config(schema, args.file, args.overrides, require=False)  # shows what is still to give
    title = "defaults" if args.file is None and not args.overrides else "the resolved config"
    print(f"# supernas {args.schema}: {title}; every key, what it allows and what it does")
    print("\n".join(describe(cfg)))


# ---------------------------------------------------------------------------- data
@command
def cmd_data(args: argparse.Namespace) -> int:
    from .data import DataConfig
    from .data.check import check_data

    report = check_data(DataConfig.from_dict({"path": args.path, "format": args.format}), args.workers)
    for path, reason in report.unreadable:
        print(f"{path}: {reason}")
    if report.in_memory:
        print(f"{args.path}: {report.images} images ({report.format}, read into memory: every one readable)")
        return 0
    print(f"{args.path}: {report.images} image files ({report.format}), {len(report.unreadable)} unreadable"
          + ("; remove or replace them, or train with data.on_bad_image=skip" if report.unreadable else ""))
    return 1 if report.unreadable else 0


# ---------------------------------------------------------------------------- training
@command
def cmd_train(args: argparse.Namespace) -> None:
    from .config import SupernetConfig, load_config
    from .train.supernet import SupernetTrainer

    cfg = load_config(SupernetConfig, *_config_and_overrides(args))
    trainer = SupernetTrainer(cfg, resume=args.resume)
    if args.dry_run:
        return _print_dry_run(trainer, args.resume)
    run_dir = trainer.fit()
    print(f"supernet trained: {run_dir}/checkpoint.pt")


@command
def cmd_fpnas(args: argparse.Namespace) -> None:
    from .config import FpnasConfig, load_config
    from .fpnas.probabilistic import ProbabilisticSearch

    cfg = load_config(FpnasConfig, *_config_and_overrides(args))
    search = ProbabilisticSearch(cfg, resume=args.resume)
    if args.dry_run:
        return _print_dry_run(search, args.resume)
    run_dir = search.fit()
    print(f"search done: {run_dir}/result.json (most likely Arch and top-N), plots {run_dir}/search.png, "
          f"{run_dir}/arch.png")


def _print_dry_run(trainer, resume: bool) -> None:
    """`--dry-run`: the resolved config, the data, the steps and an estimate of the wall time."""
    from .runtime.dry_run import dry_run

    print("\n".join(dry_run(trainer.loop(), resume)))


def _config_and_overrides(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """CONFIG is optional before the overrides: a first word with '=' that is no file is an override."""
    from pathlib import Path

    if args.config is not None and "=" in args.config and not Path(args.config).is_file():
        return None, [args.config, *args.overrides]
    return args.config, list(args.overrides)


def _print_standalone(r: dict) -> None:
    ema = f", EMA {r['top1_ema']:.2f}" if r["top1_ema"] is not None else ""
    print(f"top-1 {r['top1']:.2f} ({r['weights']} weights; raw {r['top1_raw']:.2f}{ema}), {r['mflops']:.1f} MFLOPs, "
          f"{r['steps']} steps in {r['seconds']:.0f} s; model: {r['export']}, result: {r['run_dir']}/result.json")


@command
def cmd_retrain(args: argparse.Namespace) -> None:
    from .train.standalone import retrain_trainer

    config, overrides = _config_and_overrides(args)
    trainer = retrain_trainer(args.arch, config, overrides, resume=args.resume)
    if args.dry_run:
        return _print_dry_run(trainer, args.resume)
    _print_standalone(trainer.fit())


@command
def cmd_finetune(args: argparse.Namespace) -> None:
    from .train.standalone import finetune_trainer

    config, overrides = _config_and_overrides(args)
    trainer = finetune_trainer(args.model, config, overrides, resume=args.resume)
    if args.dry_run:
        return _print_dry_run(trainer, args.resume)
    _print_standalone(trainer.fit())


# ---------------------------------------------------------------------------- stage 2 and delivery
@command
def cmd_search(args: argparse.Namespace) -> None:
    import dataclasses

    from .search import SearchJob, format_table, parse_budgets
    from .search.runner import search_run

    latency = args.cost == "latency"
    if latency and args.max_mflops is not None:
        raise SupernasError("--max-mflops is a MFLOPs budget; with --cost latency give --budgets in ms "
                            "(e.g. 1.5:3:0.5)")
    if (args.budgets is None) == (args.max_mflops is None):
        raise SupernasError("give either --budgets (e.g. 200:800:100) or --max-mflops B")
    budgets = parse_budgets(args.budgets if args.budgets is not None else args.max_mflops,
                            "ms" if latency else "MFLOPs")
    # search.KEY=VALUE settings are the strategy's; the others replace the run's data settings
    options = [o for o in args.overrides if str(o).startswith("search.")]
    overrides = [o for o in args.overrides if not str(o).startswith("search.")]
    if args.run is None and overrides:
        raise SupernasError(f"'{overrides[0]}' replaces a run's data setting, and no run directory was given")
    # every other field of the job is the flag of its name
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(SearchJob)
             if f.name not in ("budgets", "options", "overrides")}
    job = SearchJob(budgets=tuple(budgets), options=tuple(options), overrides=tuple(overrides), **given)
    if args.dry_run:
        from .search.estimate import estimate_search

        print("\n".join(estimate_search(job)))
        return
    result = search_run(job)
    out = job.out_dir
    print(format_table(result.pareto()))
    print(f"Pareto set: {out}/pareto.json, {out}/pareto.csv; plot: {out}/pareto.png"
          + (f"; latency table: {out}/latency_table.json" if latency else ""))


@command
def cmd_predictor(args: argparse.Namespace) -> None:
    from .search import predictor_runs as runs

    if args.action == "import":
        return _import_predictor(args)
    if args.action == "fit":
        if args.predictor is not None:  # never over the run's checkpoint or a file of another kind
            from .runtime.outputs import check_output_file, is_saved_predictor

            check_output_file(args.predictor, "--predictor", "saved supernas predictor", is_saved_predictor,
                              args.force)
        _, check, path = runs.fit_predictor_run(args.run, n=1000 if args.n is None else args.n, holdout=args.holdout,
                                              bn_batches=args.bn_batches, max_batches=args.max_batches,
                                              device=args.device, out=args.predictor, seed=args.seed,
                                              overrides=args.overrides)
        print(f"predictor: {path}; {runs.describe_tau(check)}" if check is not None
              else f"predictor: {path} (no held-out Archs, no Kendall tau)")
    elif args.action == "eval":
        r = runs.eval_predictor_run(args.run, args.predictor, n=200 if args.n is None else args.n,
                                    bn_batches=args.bn_batches,
                                    max_batches=args.max_batches, device=args.device, seed=args.seed + 1,
                                    overrides=args.overrides)
        print(f"predictor {r['predictor']} on {r['archs']} Archs it was not fitted on: Kendall tau "
              f"{r['kendall_tau']:.3f}, Pearson r {r['pearson']:.3f}, mean abs. error {r['mae']:.2f} top-1 points")
    else:
        if args.out is not None:  # before the predictor is read and a million Archs ranked
            from pathlib import Path

            from .runtime.run_dir import require_own_folder

            require_own_folder(Path(args.out), "--out")
        best, worst = runs.offline_sets_run(args.run, args.predictor, n=1_000_000 if args.n is None else args.n,
                                            bin_width=args.bin_width, out_dir=args.out, seed=args.seed)
        print(f"offline Pareto sets: best {best}, worst {worst}\n"
              f"train on one with: supernas train CONFIG sampler.kind=pareto sampler.pareto_set={best}")


def _import_predictor(args: argparse.Namespace) -> None:
    """`supernas predictor import attentivenas FILE --out P`: the published forest as our predictor."""
    from .predictors import import_attentivenas_predictor
    from .runtime.outputs import check_output_file, is_saved_predictor

    usage = "supernas predictor import attentivenas FILE --out PREDICTOR"
    if args.run != "attentivenas":
        raise SupernasError(f"predictor import reads the 'attentivenas' format (the published acc_predictor.joblib), "
                            f"not '{args.run}'; run: {usage}")
    if len(args.overrides) != 1 or not args.out:
        raise SupernasError(f"give the file to import and where to write the predictor: {usage}")
    out = check_output_file(args.out, "--out", "saved supernas predictor", is_saved_predictor, args.force)
    pred = import_attentivenas_predictor(args.overrides[0])
    path = pred.save(out)
    print(f"predictor: {path} ({pred.forest.n_trees} trees over the space 'attentivenas', {pred.origin}); "
          f"score a search with it: supernas search RUN --predictor {path} --budgets ...")


@command
def cmd_export(args: argparse.Namespace) -> None:
    from .deliver import export_arch
    from .deliver.export import make_room_for_export
    from .evaluation import load_run
    from .search.picking import describe_pick, picked_entry, require_same_weights
    from .search.plots import mark_exported
    from .spaces import load_arch

    if args.format == "reference":
        from .deliver.reference_run import export_reference

        if args.arch is not None or args.pick is not None:
            raise SupernasError("--format reference writes the whole supernet; drop --arch / --pick")
        out = args.out or f"{args.run}/export"
        make_room_for_export(out, None, args.force)
        print(f"exported: {export_reference(args.run, out)} (the supernet in the AttentiveNAS reference layout)")
        return
    from .deliver.export import EXPORT_FORMATS

    EXPORT_FORMATS.get(args.format, "--format")  # a bad name fails before the run is loaded
    if (args.arch is None) == (args.pick is None):
        raise SupernasError("give either --arch ARCH or --pick BUDGET (the best Arch of a searched budget)")
    net, _, data = load_run(args.run, args.device, args.overrides)
    if args.arch is not None:
        arch = load_arch(net.space, args.arch)
    else:
        search_dir = args.search or f"{args.run}/search"
        entry, unit, header = picked_entry(search_dir, args.pick)
        require_same_weights(header, net, search_dir, args.run)
        arch = load_arch(net.space, entry["arch"])
        score = header.get("score") if isinstance(header.get("score"), dict) else {}
        print(f"--pick {args.pick:g}: {describe_pick(entry, unit, score)}, at {net.plan(arch).resolution} px")
    out = args.out or f"{args.run}/export"
    make_room_for_export(out, arch.to_dict(), args.force)
    path = export_arch(net, arch, data, out, args.format, args.bn_batches, batch_size=args.bn_batch_size)
    print(f"exported: {path}")
    for plot in mark_exported(args.run, path.parent):
        print(f"marked in {plot}")


@command
def cmd_eval(args: argparse.Namespace) -> None:
    from .evaluation import evaluate_model, load_exported, measure_latency
    from .evaluation.static_models import export_dataset
    from .runtime.distributed import resolve_device

    model, meta = load_exported(args.model)
    device = str(resolve_device(args.device))
    result: dict = {"model": args.model, "mflops": meta["mflops"], "params": meta["params"]}
    origin = (meta.get("made_by") or {}).get("checkpoint") or {}
    if origin.get("step") is not None:  # the supernet checkpoint it was exported from
        result.update(step=origin["step"], **({"epoch": origin["epoch"]} if origin.get("epoch") is not None else {}))
    # without --data: the dataset the export records, when it is found here
    data, where = export_dataset(meta, args.data)
    if data is not None:
        result.update(evaluate_model(model, data.val, args.batch_size, device, meta["resolution"]), on=where)
    elif not args.json:
        print(f"no accuracy: {where}", file=sys.stderr)
    if args.latency or data is None:
        result["latency"] = measure_latency(model, meta["resolution"], args.latency_batch, args.latency_warmup,
                                            args.latency_repeats, device=device)
    print(json.dumps(result) if args.json else "  ".join(
        f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items() if k != "latency")
        + (f"  latency {result['latency']['median_ms']:.2f} ms (batch {args.latency_batch}, {device})"
           if "latency" in result else ""))



@command
def cmd_import(args: argparse.Namespace) -> None:
    from .deliver.reference_run import import_reference

    run = import_reference(args.checkpoint, args.out, args.space, args.overrides)
    print(f"imported: {run} (space {args.space}); stage 2 on it: supernas search|predictor|export {run} ... "
          "data.path=PATH")


@command
def cmd_report(args: argparse.Namespace) -> None:
    from .report import write_report

    if args.out is not None:  # never over a run's files or a page the user wrote
        from .runtime.outputs import check_output_file, is_report_page

        check_output_file(args.out, "--out", "supernas report page", is_report_page, args.force)
    path, notes = write_report(args.run, args.out)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"report: {path} (open it in a browser; it needs no server or network)")


@command
def cmd_quickstart(args: argparse.Namespace) -> None:
    from .quickstart import quickstart

    quickstart(args.dir, device=args.device)


# ---------------------------------------------------------------------------- parser
NUM_CLASSES_HELP = "classes of the head, counted in the MFLOPs and parameters (default 1000, ImageNet's)"


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="supernas", description="Neural architecture search of efficient image "
                                "classifiers: AttentiveNAS and FP-NAS. Numbers on the command line are plain decimals "
                                "(1000, 1e3, 0.5): no underscores (1_000 is refused), finite, whole where a "
                                "count is asked.")
    p.add_argument("--version", action="version", version=f"supernas {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help)

    def run_args(s: argparse.ArgumentParser, configs: str, example: str, optional: bool = False) -> None:
        """CONFIG [key=value ...] [--resume], as every training command takes them."""
        s.add_argument("config", nargs="?" if optional else None, help=f"YAML config (see {configs})")
        s.add_argument("overrides", nargs="*", metavar="key=value", help=f"e.g. {example}")
        s.add_argument("--resume", action="store_true", help="continue the run in run.dir from its checkpoint")
        s.add_argument("--dry-run", action="store_true", help="print the resolved config, the data, the steps and "
                       "an estimate of the wall time from a few timed steps, then exit without writing the run")

    s = add("config", "the settings of a command: every key with its default, what it allows and its doc "
            "(with a file and overrides: the config they resolve to)")
    s.add_argument("action", choices=["show"], help="show: print the settings")
    s.add_argument("schema", metavar="COMMAND", choices=["train", "fpnas", "retrain", "finetune"],
                   help="train, fpnas, retrain or finetune")
    s.add_argument("file", nargs="?", help="a YAML config to resolve")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="settings replacing the file's, e.g. "
                   "train.epochs=10")

    s = add("data", "check a dataset before a long run: decode every image (in parallel) and list the files "
            "that do not decode (exit status 1 when there are any)")
    s.add_argument("action", choices=["check"], help="check: decode every image")
    s.add_argument("path", help="the dataset's folder, in a layout training reads (see data.path)")
    s.add_argument("--format", default="auto", help="the layout: auto (detected), imagefolder, cifar10, cifar100, "
                   "mnist")
    s.add_argument("--workers", help="processes decoding images (default: every core)")

    s = add("spaces", "list the built-in search spaces with their size and MFLOPs range")
    s.add_argument("--num-classes", default=1000, help=NUM_CLASSES_HELP)
    s.add_argument("--json", action="store_true", help="one JSON object per line")

    s = add("flops", "MFLOPs and parameters of one Arch")
    s.add_argument("--space", required=True, help="built-in name or a space YAML file")
    s.add_argument("--arch", required=True, help="JSON string or file (ours or the AttentiveNAS reference "
                   "format), or a published model name such as a0")
    s.add_argument("--num-classes", default=1000, help=NUM_CLASSES_HELP)
    s.add_argument("--json", action="store_true", help="one JSON object: MFLOPs, parameters and the Arch")

    s = add("sample", "random Archs of a space as JSON lines, optionally within a MFLOPs range")
    s.add_argument("--space", required=True, help="built-in name or a space YAML file")
    s.add_argument("-n", default=1, help="number of Archs")
    s.add_argument("--min-mflops", help="only Archs of at least this many MFLOPs")
    s.add_argument("--max-mflops", help="only Archs of at most this many MFLOPs")
    s.add_argument("--seed", help="seed of the generator (fresh entropy when absent)")
    s.add_argument("--num-classes", default=1000, help=NUM_CLASSES_HELP)
    s = add("train", "AttentiveNAS stage 1: train a supernet (sandwich rule, in-place distillation, "
            "attentive sampling); under torchrun on many GPUs or nodes")
    run_args(s, "configs/attentivenas_*.yaml; defaults fill what it leaves out", "train.epochs=10 data.path=~/cifar10",
             optional=True)

    s = add("fpnas", "FP-NAS (or PARSEC with search.mode=parsec): learn a distribution over Archs with the "
            "shared weights")
    run_args(s, "configs/fpnas_*.yaml", "train.epochs=10 data.path=~/cifar10", optional=True)

    s = add("retrain", "train one Arch from scratch as a standalone model (label smoothing, AutoAugment, EMA, "
            "optional stochastic depth and distillation) and export it")
    s.add_argument("arch", help="an FP-NAS run directory, an export directory, a JSON file or string with an Arch "
                   "(give its space with space=... when the file has none), a0..a6, or smallest / largest")
    run_args(s, "configs/retrain_*.yaml", "train.epochs=10 data.path=~/cifar10", optional=True)

    s = add("finetune", "train an exported model further (optionally distilling from a supernet's largest Arch "
            "with train.teacher=RUN) and export it again")
    s.add_argument("model", help="directory written by `supernas export` (or RUN/export of `supernas retrain`)")
    run_args(s, "configs/finetune_*.yaml", "train.teacher=runs/supernet", optional=True)

    def threads_arg(s: argparse.ArgumentParser) -> None:
        s.add_argument("--threads", default="auto", help="CPU threads of torch's operators (as run.threads of the "
                       "training commands; auto: the cores this process may use)")

    def latency_args(s: argparse.ArgumentParser, what: str, statistic: str) -> None:
        s.add_argument("--latency-batch", default=1, help="batch size of the latency measurements")
        s.add_argument("--latency-warmup", default=10, help=f"untimed runs of {what} before timing")
        s.add_argument("--latency-repeats", default=30, help=f"timed runs of {what} ({statistic})")

    def stage2(s: argparse.ArgumentParser, run_optional: bool = False) -> None:
        if run_optional:
            s.add_argument("run", nargs="?", help="run directory of `supernas train` or `supernas import` (none: "
                           "--predictor scores alone, over --space)")
        else:
            s.add_argument("run", help="run directory of `supernas train` or `supernas import`")
        s.add_argument("overrides", nargs="*", metavar="data.KEY=VALUE",
                       help="data settings replacing the run's, e.g. data.path=~/imagenet")
        s.add_argument("--bn-batches", default=64, help="training batches for BN re-calibration")
        s.add_argument("--max-batches", help="evaluate on at most this many batches of the split")
        s.add_argument("--device", default="auto", help="where Archs are scored: auto (a GPU when there is one), "
                       "cpu, cuda, cuda:N")
        s.add_argument("--seed", default=0, help="seed of the command's draws (Archs sampled, data order)")
        threads_arg(s)

    s = add("search", "AttentiveNAS stage 2: evolutionary search per FLOPs (or latency) budget; writes the "
            "Pareto set")
    s.epilog = ("The defaults are the paper's: per budget a population of 512 and 20 generations of 128 mutations "
                "and 128 crossovers (up to 5632 Archs), each Arch re-calibrated on 64 batches of 256 images: hours "
                "on a GPU, days on a CPU. See the cost first with --dry-run; lower --population, --generations, "
                "--mutations/--crossovers, --bn-batches or --max-batches, or score with --predictor. With a "
                "predictor and no run, the search needs no supernet at all: supernas search --space attentivenas "
                "--predictor P --budgets 200:700:100 --out DIR.")
    stage2(s, run_optional=True)
    s.add_argument("--budgets", help="budgets in MFLOPs (in ms with --cost latency): START:STOP:STEP, a comma "
                   "list, or one number (plain decimals: no underscores, no empty items; at most 1000 budgets)")
    s.add_argument("--cost", choices=["mflops", "latency"], default="mflops",
                   help="what the budgets bound: analytic MFLOPs, or latency measured on --device (per-layer "
                   "table kept in OUT/latency_table.json)")
    latency_args(s, "each layer", "in interleaved rounds; the fastest, robust to other work")
    s.add_argument("--latency-window", default=10.0, help="seconds of timed runs the interleaved rounds span at "
                   "least (more rounds when --latency-repeats take less): a shared machine runs at full speed "
                   "only in brief spells, which a short window may miss")
    s.add_argument("--max-mflops", help="a single budget")
    s.add_argument("--predictor", help="score with a saved predictor instead of the calibrated supernet")
    s.add_argument("--space", help="without a run: the space to search, which the predictor must be of (default: "
                   "the predictor's own)")
    s.add_argument("--num-classes", help="without a run: the classes of the head the MFLOPs count (default 1000, "
                   "ImageNet's)")
    s.add_argument("--strategy", default="evolution", help="evolution (the paper's), random (the baseline: as "
                   "many random Archs per budget as the evolution scores), guided (a surrogate fitted on the scores "
                   "so far picks what the scorer sees: a twelfth of the evolution's Archs), or one registered in "
                   "supernas.search.STRATEGIES; search.KEY=VALUE settings tune them (docs/search.md), e.g. "
                   "search.init=uniform search.niche=none search.edge=0 search.fresh=0 for the previous "
                   "evolution, search.parents=512 to breed from the whole population as the reference code")
    s.add_argument("--population", default=512, help="Archs per budget in the initial population (the paper's 512)")
    s.add_argument("--mutations", default=128, help="mutated children per generation (the paper's 128)")
    s.add_argument("--crossovers", default=128, help="crossover children per generation (the paper's 128)")
    s.add_argument("--generations", default=20, help="generations per budget after the initial population (the "
                   "paper's 20)")
    s.add_argument("--out", help="output directory (default RUN/search; required without a run)")
    s.add_argument("--resume", action="store_true", help="continue an interrupted search")
    s.add_argument("--dry-run", action="store_true", help="print how many Archs the search would score and an "
                   "estimate of its time from a few Archs scored on --device, then exit without searching")

    s = add("predictor", "the random-forest accuracy predictor: fit it on Archs scored by the supernet, "
            "check it on unseen Archs (eval), build the offline best/worst Pareto sets from it, or import the "
            "published AttentiveNAS one (import attentivenas FILE --out P)")
    s.add_argument("action", choices=["fit", "eval", "offline-sets", "import"],
                   help="fit: score -n Archs with the supernet and fit the forest; eval: its Kendall tau on Archs it "
                   "was not fitted on; offline-sets: the best/worst Pareto sets for sampler.kind=pareto; import: "
                   "the published AttentiveNAS predictor (import attentivenas FILE --out P)")
    stage2(s)
    s.add_argument("-n", help="Archs to evaluate (fit: 1000, eval: 200) or to rank (offline-sets: 1000000)")
    s.add_argument("--holdout", default=0.2, help="fit: fraction held out for Kendall tau")
    s.add_argument("--predictor", help="predictor path (default RUN/predictor.npz)")
    s.add_argument("--bin-width", default=25.0, help="offline-sets: MFLOPs per bin")
    s.add_argument("--out", help="offline-sets: output directory (default RUN/offline); import: the predictor "
                   "file to write")
    s.add_argument("--force", action="store_true", help="fit, import: replace an existing file that is not a "
                   "saved predictor (a run's own files are never replaced)")

    s = add("export", "export an Arch as a standalone model with calibrated BatchNorm")
    stage2(s)
    s.add_argument("--arch", help="JSON string or file, or a published model name")
    s.add_argument("--pick", help="the best searched Arch within this budget of RUN/search: MFLOPs, "
                   "or ms after a --cost latency search")
    s.add_argument("--format", default="pt",
                   help="an export format: pt (state_dict.pt, rebuilt with arch.json: runs no code on load), "
                   "pickle (also model.pt, a pickled module: loading it runs code), torchscript, onnx (or one "
                   "registered in supernas.deliver.export.EXPORT_FORMATS); every export has arch.json, "
                   "state_dict.pt and manifest.json; reference: the whole supernet in the AttentiveNAS "
                   "reference checkpoint layout (OUT/supernet.pth.tar; no --arch)")
    s.add_argument("--bn-batch-size", default=64, help="images per BN re-calibration batch (the "
                   "reference's Table 1 figures: 256)")
    s.add_argument("--out", help="output directory (default RUN/export)")
    s.add_argument("--search", help="--pick: the folder of the search to pick from (default RUN/search; the --out "
                   "of `supernas search`)")
    s.add_argument("--force", action="store_true", help="replace the export of another Arch in the output directory "
                   "(its model files are removed)")

    s = add("eval", "accuracy of an exported model on a dataset's validation split, and its latency")
    s.add_argument("model", help="directory written by `supernas export` (its state_dict.pt), or one of its model "
                   "files: model.torchscript.pt, model.onnx (run by onnxruntime); a pickled model.pt is never loaded")
    s.add_argument("--data", help="dataset path (same layouts as training; 'digits' for the built-in); default: "
                   "the dataset the export records, when it is found")
    s.add_argument("--batch-size", default=256, help="images per evaluation batch")
    s.add_argument("--latency", action="store_true", help="also measure latency (always, without a dataset)")
    latency_args(s, "the model", "their median and 90th percentile")
    s.add_argument("--device", default="auto", help="where to evaluate and time it: auto, cpu, cuda, cuda:N")
    s.add_argument("--json", action="store_true", help="one JSON object: accuracy, latency and where they came from")
    threads_arg(s)

    s = add("import", "a published supernet (the AttentiveNAS reference checkpoint layout, such as "
            "attentive_nas_pretrained.pth.tar) as a run directory for stage 2")
    s.add_argument("format", choices=["attentivenas"], help="layout of the checkpoint")
    s.add_argument("checkpoint", help="the .pth.tar file ({'state_dict': ...} or a bare state dict)")
    s.add_argument("--out", required=True, help="run directory to write")
    s.add_argument("--space", default="attentivenas", help="its search space (built-in name or space YAML)")
    s.add_argument("overrides", nargs="*", metavar="data.KEY=VALUE",
                   help="the data stage 2 calibrates and evaluates on, e.g. data.path=~/imagenet")

    s = add("report", "one self-contained HTML page of a run to open or share: Pareto fronts, training curves, "
            "predictor, scored Archs, exported models and the commands that made them (needs supernas[report])")
    s.add_argument("run", help="run directory of train, fpnas, retrain or finetune (or a search --out)")
    s.add_argument("--out", help="HTML file to write (default RUN/report.html)")
    s.add_argument("--force", action="store_true", help="replace an existing --out file that is not a supernas "
                   "report (a run's own files are never replaced)")

    s = add("quickstart", "stage 1 and stage 2 on the built-in digits, on CPU in a few minutes")
    s.add_argument("--dir", default="runs/quickstart", help="the run's folder (new or empty)")
    s.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:N")
    return p


def _apply_threads(value: str) -> None:
    """--threads of the commands after training: 'auto' or a positive count."""
    from .runtime.threads import apply_threads

    if value != "auto" and not (value.isdigit() and int(value) > 0):
        raise SupernasError(f"--threads must be auto or a positive integer, got '{value}'")
    apply_threads(value if value == "auto" else int(value), workers=0)


def _one_line_warnings(show: Callable) -> Callable:
    """A warnings.showwarning that prints SupernasWarnings as one line naming supernas, and hands
    the others to `show` (Python's)."""
    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SupernasWarning):
            print(f"supernas: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)
    return showwarning


def main(argv: Sequence[str] | None = None) -> int:
    python_show = warnings.showwarning
    warnings.showwarning = _one_line_warnings(python_show)
    try:
        return _run(argv)
    finally:
        warnings.showwarning = python_show


def _out_of_memory_fix(args: argparse.Namespace, on_the_cpu: bool = False) -> str:
    flags = [f"--{k.replace('_', '-')} (now {getattr(args, k)})"
             for k in ("batch_size", "bn_batch_size", "latency_batch") if getattr(args, k, None)]
    fix = f"lower {' or '.join(flags)}" if flags else "free the device (another process may hold its memory)"
    on_cpu = "--device cpu" if hasattr(args, "device") else "run.device=cpu"
    if on_the_cpu:  # the CPU allocator's error: --device cpu would change nothing
        return f"out of memory in the CPU's RAM: {fix}"
    return f"out of memory on the device: {fix}, or run it on the CPU with {on_cpu}"


# The numeric flags: (integer?, minimum, maximum, why the maximum), by dest and, where a command
# bounds a flag its own way, by (command, dest). argparse hands them over as text; they are read by
# utils.numbers (no underscores, finite, whole numbers for counts) before anything is allocated.
_SEED = (True, 0, 2**63 - 1, "a seed of 63 bits")
_NUMERIC: dict = {
    "num_classes": (True, 1, 1_000_000, "more classes than any dataset has"),
    "n": (True, 1, 1_000_000, "the Archs are held in memory"),
    ("predictor", "n"): (True, 1, 100_000, "each Arch is scored by the supernet"),
    ("offline-sets", "n"): (True, 1, 10_000_000, "the ranked Archs are held in memory"),
    "seed": _SEED,
    "min_mflops": (False, None, None, ""), "max_mflops": (False, None, None, ""),
    "workers": (True, 1, 100_000, ""),
    "bn_batches": (True, 1, 1_000_000, ""), "max_batches": (True, 1, None, ""),
    "latency_batch": (True, 1, 65_536, "a batch that large fits no device"),
    "latency_warmup": (True, 0, 1_000_000, ""), "latency_repeats": (True, 1, 1_000_000, ""),
    "latency_window": (False, 0.0, 3600.0, ""),
    "population": (True, None, 1_000_000, "the population is held in memory"),  # the strategy says >= 1
    "mutations": (True, 0, 1_000_000, "each generation's children are held in memory"),
    "crossovers": (True, 0, 1_000_000, "each generation's children are held in memory"),
    "generations": (True, 0, 1_000_000, ""),
    "holdout": (False, 0.0, 1.0, ""), "bin_width": (False, 0.0, None, ""), "pick": (False, 0.0, None, ""),
    "bn_batch_size": (True, 1, 65_536, "a batch that large fits no device"),
    "batch_size": (True, 1, 65_536, "a batch that large fits no device"),
}


def _read_numbers(args: argparse.Namespace) -> None:
    """Each numeric flag of `args` read from its text and checked against its bounds, in place."""
    from .utils.numbers import check_real, parse_int

    action = getattr(args, "action", None)
    for dest, value in vars(args).items():
        rule = _NUMERIC.get((action, dest)) or _NUMERIC.get((args.command, dest)) or _NUMERIC.get(dest)
        if rule is None or value is None:
            continue
        integer, low, high, why = rule
        flag = "-n" if dest == "n" else f"--{dest.replace('_', '-')}"
        if integer:
            setattr(args, dest, parse_int(value, flag, low, high, why))
        else:
            exclusive = dest in ("bin_width", "pick")
            setattr(args, dest, check_real(value, flag, low, high, exclusive_min=exclusive))


# Flags naming a folder or file: an empty one would be the current folder (or nothing at all).
_PATH_FLAGS = ("out", "dir", "data", "predictor", "search", "path", "run", "model", "checkpoint")


def _refuse_empty_paths(args: argparse.Namespace) -> None:
    for dest in _PATH_FLAGS:
        value = getattr(args, dest, None)
        if isinstance(value, str) and not value.strip():
            flag = f"--{dest}" if dest in ("out", "dir", "data", "predictor", "search") else dest.upper()
            raise SupernasError(f"{flag} is empty; give it a path (an empty one would be the current folder)")


def _file_system_message(e: OSError) -> str | None:
    """One line for what a file system refuses (a read-only folder, a name too long), naming the
    folder or file; None for other errors."""
    import errno
    from pathlib import Path

    name = e.filename if isinstance(e.filename, (str, os.PathLike)) else None
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        where = Path(name) if name is not None else None
        folder = where.parent if where is not None and not where.is_dir() else where
        what = "read-only" if e.errno == errno.EROFS else "not writable by you"
        return (f"the folder '{folder}' is {what} ({e.strerror}); write elsewhere (--out, run.dir) or make it "
                "writable" if folder is not None else f"a folder is {what} ({e.strerror}); write elsewhere")
    if e.errno == errno.ENAMETOOLONG:
        return (f"the name '{name}' is longer than the file system allows ({e.strerror}); choose a shorter one"
                if name is not None else f"a file name is longer than the file system allows ({e.strerror})")
    return None


def parse_args(argv: Sequence[str] | None = None, numbers: bool = True) -> argparse.Namespace:
    """The command line as `supernas` reads it: argparse's reading, key=value settings after options,
    and (with `numbers`) each numeric flag read from its text and checked (a SupernasError if not)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value settings may follow options (`search RUN --budgets 300 data.path=...`): argparse
    # hands the positional list only those before the first option
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    run = getattr(args, "run", None)
    if args.command == "search" and run is not None and "=" in run and not os.path.isdir(run):
        args.overrides, args.run = [run, *args.overrides], None  # no run (a predictor's search): a setting came first
    if numbers:
        _read_numbers(args)
    return args


def _run(argv: Sequence[str] | None) -> int:
    args = parse_args(argv, numbers=False)
    try:
        _read_numbers(args)
        if hasattr(args, "threads"):
            _apply_threads(args.threads)
        from .runtime.interrupts import terminate_as_interrupt

        with terminate_as_interrupt():
            _refuse_empty_paths(args)
            code = COMMANDS[args.command](args) or 0
        sys.stdout.flush()  # here, not at exit: a reader that left fails it, and that is handled below
        return code
    except SupernasError as e:
        print(f"supernas {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # a training loop names its own fix (runtime/out_of_memory.py); the rest here
        from .runtime.out_of_memory import is_out_of_memory

        if not is_out_of_memory(e):
            raise
        cpu = "can't allocate memory" in str(e)  # the CPU allocator's words; CUDA says "out of memory"
        print(f"supernas {args.command}: error: {_out_of_memory_fix(args, cpu)}", file=sys.stderr)
        return 2
    except RunInterrupted:  # the run said where it stopped and how to continue
        return 130
    except KeyboardInterrupt:
        hint = ""
        # a search saves its state after every generation; a training stopped at once (a second
        # Ctrl-C) continues from its last checkpoint
        saved = {"search": "its state saved after the last finished generation",
                 **dict.fromkeys(("train", "fpnas", "retrain", "finetune"), "its last checkpoint")}
        if args.command in saved and not args.dry_run:
            from .runtime.interrupts import resume_command

            hint = f"; continue from {saved[args.command]} with: {resume_command()}"
        print(f"supernas {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`supernas sample ... | head -1`): not an error
        # stdout's buffer cannot be flushed into the closed pipe at exit: point it at nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a full disk met by a write that is not atomic (logs, metrics, plots)
        from pathlib import Path

        from .utils.io import DISK_FULL, disk_full_message

        if e.errno not in DISK_FULL:
            message = _file_system_message(e)
            if message is None:
                raise
            print(f"supernas {args.command}: error: {message}", file=sys.stderr)
            return 2
        where = Path(e.filename) if isinstance(e.filename, str) else None
        print(f"supernas {args.command}: error: {disk_full_message(where)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
