"""Commands that look at things without training: the spaces and an Arch's costs, random Archs,
a command's settings, a dataset's images, an exported model's accuracy and latency, a run's report."""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from .arguments import NUM_CLASSES_HELP, force_arg, latency_args, threads_arg
from .commands import command


def _config_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("action", choices=["show"], help="show: print the settings")
    s.add_argument("schema", metavar="COMMAND", choices=["train", "fpnas", "retrain", "finetune"],
                   help="train, fpnas, retrain or finetune")
    s.add_argument("file", nargs="?", help="a YAML config to resolve")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="settings replacing the file's, e.g. "
                   "train.epochs=10")


@command("config", "the settings of a command: every key with its default, what it allows and its doc "
         "(with a file and overrides: the config they resolve to)", _config_arguments)
def cmd_config(args: argparse.Namespace) -> None:
    from ..config import SCHEMAS, describe, load_config

    schema = SCHEMAS[args.schema]
    if args.file is not None and "=" in args.file and not os.path.exists(args.file):  # no file: settings alone
        args.file, args.overrides = None, [args.file, *args.overrides]
    cfg = load_config(schema, args.file, args.overrides, require=False)  # shows what is still to give
    title = "defaults" if args.file is None and not args.overrides else "the resolved config"
    print(f"# supernas {args.schema}: {title}; every key, what it allows and what it does")
    print("\n".join(describe(cfg)))


def _data_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("action", choices=["check"], help="check: decode every image")
    s.add_argument("path", help="the dataset's folder, in a layout training reads (see data.path)")
    s.add_argument("--format", default="auto", help="the layout: auto (detected), imagefolder, cifar10, cifar100, "
                   "mnist")
    s.add_argument("--workers", help="processes decoding images (default: every core)")


@command("data", "check a dataset before a long run: decode every image (in parallel) and list the "
         "files that do not decode (exit status 1 when there are any)", _data_arguments)
def cmd_data(args: argparse.Namespace) -> int:
    from ..data import DataConfig
    from ..data.check import check_data

    report = check_data(DataConfig.from_dict({"path": args.path, "format": args.format}), args.workers)
    for path, reason in report.unreadable:
        print(f"{path}: {reason}")
    if report.in_memory:
        print(f"{args.path}: {report.images} images ({report.format}, read into memory: every one readable)")
        return 0
    print(f"{args.path}: {report.images} image files ({report.format}), {len(report.unreadable)} unreadable"
          + ("; remove or replace them, or train with data.on_bad_image=skip" if report.unreadable else ""))
    return 1 if report.unreadable else 0


def _spaces_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--num-classes", default=1000, help=NUM_CLASSES_HELP)
    s.add_argument("--json", action="store_true", help="one JSON object per line")


@command("spaces", "list the built-in search spaces with their size and MFLOPs range", _spaces_arguments)
def cmd_spaces(args: argparse.Namespace) -> None:
    from ..spaces import CostModel, get_space, list_spaces

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


def _flops_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--space", required=True, help="built-in name or a space YAML file")
    s.add_argument("--arch", required=True, help="JSON string or file (ours or the AttentiveNAS reference "
                   "format), or a published model name such as a0")
    s.add_argument("--num-classes", default=1000, help=NUM_CLASSES_HELP)
    s.add_argument("--json", action="store_true", help="one JSON object: MFLOPs, parameters and the Arch")


@command("flops", "MFLOPs and parameters of one Arch", _flops_arguments)
def cmd_flops(args: argparse.Namespace) -> None:
    from ..spaces import CostModel, get_space, load_arch

    space = get_space(args.space)
    arch = load_arch(space, args.arch)
    mflops, params = (float(v[0]) for v in CostModel(space, args.num_classes).costs_indices(space.to_indices(arch)))
    if args.json:
        print(json.dumps({"space": space.name, "mflops": mflops, "params": int(params), "arch": arch.to_dict()}))
    else:
        print(f"{mflops:.1f} MFLOPs, {params / 1e6:.2f} M params ({space.name}, {args.num_classes} classes)")


def _sample_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--space", required=True, help="built-in name or a space YAML file")
    s.add_argument("-n", default=1, help="number of Archs")
    s.add_argument("--min-mflops", help="only Archs of at least this many MFLOPs")
    s.add_argument("--max-mflops", help="only Archs of at most this many MFLOPs")
    s.add_argument("--seed", help="seed of the generator (fresh entropy when absent)")
    s.add_argument("--num-classes", default=1000, help=NUM_CLASSES_HELP)


@command("sample", "random Archs of a space as JSON lines, optionally within a MFLOPs range", _sample_arguments)
def cmd_sample(args: argparse.Namespace) -> None:
    from ..sampling import sample_in_range
    from ..spaces import CostModel, get_space

    space = get_space(args.space)
    cost = CostModel(space, args.num_classes)
    rng = np.random.default_rng(args.seed)
    lo = -np.inf if args.min_mflops is None else args.min_mflops
    hi = np.inf if args.max_mflops is None else args.max_mflops
    idx = sample_in_range(space, cost, rng, args.n, lo, hi)
    mflops, params = cost.costs_indices(idx)
    for arch, m, p in zip(space.from_indices(idx), mflops, params):
        print(json.dumps({"arch": arch.to_dict(), "mflops": round(float(m), 3), "params": int(p)}))


def _eval_arguments(s: argparse.ArgumentParser) -> None:
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


@command("eval", "accuracy of an exported model on a dataset's validation split, and its latency", _eval_arguments)
def cmd_eval(args: argparse.Namespace) -> None:
    from ..evaluation import evaluate_model, load_exported, measure_latency
    from ..evaluation.static_models import export_dataset
    from ..runtime.distributed import resolve_device

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


def _report_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("run", help="run directory of train, fpnas, retrain or finetune (or a search --out)")
    s.add_argument("--out", help="HTML file to write (default RUN/report.html)")
    force_arg(s, "--out file that is not a supernas report")


@command("report", "one self-contained HTML page of a run to open or share: Pareto fronts, training "
         "curves, predictor, scored Archs, exported models and the commands that made them (needs "
         "supernas[report])", _report_arguments)
def cmd_report(args: argparse.Namespace) -> None:
    from ..report import write_report

    if args.out is not None:  # never over a run's files or a page the user wrote
        from ..runtime.outputs import check_output_file, is_report_page

        check_output_file(args.out, "--out", "supernas report page", is_report_page, args.force)
    path, notes = write_report(args.run, args.out)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"report: {path} (open it in a browser; it needs no server or network)")
