"""AttentiveNAS stage 2 and delivery: the search per budget, the accuracy predictor, exporting an
Arch as a model, and importing a published supernet as a run."""
from __future__ import annotations

import argparse
from typing import cast

from ..errors import SupernasError
from .arguments import force_arg, latency_args, stage2_args
from .commands import command

SEARCH_EPILOG = ("The defaults are the paper's: per budget a population of 512 and 20 generations of 128 mutations "
                 "and 128 crossovers (up to 5632 Archs), each Arch re-calibrated on 64 batches of 256 images: hours "
                 "on a GPU, days on a CPU. See the cost first with --dry-run; lower --population, --generations, "
                 "--mutations/--crossovers, --bn-batches or --max-batches, or score with --predictor. With a "
                 "predictor and no run, the search needs no supernet at all: supernas search --space attentivenas "
                 "--predictor P --budgets 200:700:100 --out DIR.")


def _search_arguments(s: argparse.ArgumentParser) -> None:
    stage2_args(s, run_optional=True)
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


@command("search", "AttentiveNAS stage 2: evolutionary search per FLOPs (or latency) budget; writes the "
         "Pareto set", _search_arguments, epilog=SEARCH_EPILOG)
def cmd_search(args: argparse.Namespace) -> None:
    import dataclasses

    from ..search import SearchJob, format_table, parse_budgets
    from ..search.runner import search_run

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
        from ..search.estimate import estimate_search

        print("\n".join(estimate_search(job)))
        return
    result = search_run(job)
    out = job.out_dir
    print(format_table(result.pareto()))
    print(f"Pareto set: {out}/pareto.json, {out}/pareto.csv; plot: {out}/pareto.png"
          + (f"; latency table: {out}/latency_table.json" if latency else ""))


def _predictor_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("action", choices=["fit", "eval", "offline-sets", "import"],
                   help="fit: score -n Archs with the supernet and fit the forest; eval: its Kendall tau on Archs it "
                   "was not fitted on; offline-sets: the best/worst Pareto sets for sampler.kind=pareto; import: "
                   "the published AttentiveNAS predictor (import attentivenas FILE --out P)")
    stage2_args(s)
    s.add_argument("-n", help="Archs to evaluate (fit: 1000, eval: 200) or to rank (offline-sets: 1000000)")
    s.add_argument("--holdout", default=0.2, help="fit: fraction held out for Kendall tau")
    s.add_argument("--predictor", help="predictor path (default RUN/predictor.npz)")
    s.add_argument("--bin-width", default=25.0, help="offline-sets: MFLOPs per bin")
    s.add_argument("--out", help="offline-sets: output directory (default RUN/offline); import: the predictor "
                   "file to write")
    force_arg(s, "file that is not a saved predictor", "fit, import")


@command("predictor", "the random-forest accuracy predictor: fit it on Archs scored by the supernet, "
         "check it on unseen Archs (eval), build the offline best/worst Pareto sets from it, or import the "
         "published AttentiveNAS one (import attentivenas FILE --out P)", _predictor_arguments)
def cmd_predictor(args: argparse.Namespace) -> None:
    from ..search import predictor_runs as runs

    if args.action == "import":
        return _import_predictor(args)
    if args.action == "fit":
        if args.predictor is not None:  # never over the run's checkpoint or a file of another kind
            from ..runtime.outputs import check_output_file, is_saved_predictor

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

            from ..runtime.run_dir import require_own_folder

            require_own_folder(Path(args.out), "--out")
        best, worst = runs.offline_sets_run(args.run, args.predictor, n=1_000_000 if args.n is None else args.n,
                                            bin_width=args.bin_width, out_dir=args.out, seed=args.seed)
        print(f"offline Pareto sets: best {best}, worst {worst}\n"
              f"train on one with: supernas train CONFIG sampler.kind=pareto sampler.pareto_set={best}")


def _import_predictor(args: argparse.Namespace) -> None:
    """`supernas predictor import attentivenas FILE --out P`: the published forest as our predictor."""
    from ..predictors import import_attentivenas_predictor
    from ..runtime.outputs import check_output_file, is_saved_predictor

    usage = "supernas predictor import attentivenas FILE --out PREDICTOR"
    if args.run != "attentivenas":
        raise SupernasError(f"predictor import reads the 'attentivenas' format (the published acc_predictor.joblib), "
                            f"not '{args.run}'; run: {usage}")
    if len(args.overrides) != 1 or not args.out:
        raise SupernasError(f"give the file to import and where to write the predictor: {usage}")
    out = check_output_file(args.out, "--out", "saved supernas predictor", is_saved_predictor, args.force)
    pred = import_attentivenas_predictor(args.overrides[0])
    path = pred.save(out)
    assert pred.forest is not None  # save refuses a predictor without a forest
    print(f"predictor: {path} ({pred.forest.n_trees} trees over the space 'attentivenas', {pred.origin}); "
          f"score a search with it: supernas search RUN --predictor {path} --budgets ...")


def _export_arguments(s: argparse.ArgumentParser) -> None:
    stage2_args(s)
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


@command("export", "export an Arch as a standalone model with calibrated BatchNorm", _export_arguments)
def cmd_export(args: argparse.Namespace) -> None:
    from ..deliver import export_arch
    from ..deliver.export import make_room_for_export
    from ..evaluation import load_run
    from ..search.picking import describe_pick, picked_entry, require_same_weights
    from ..search.plots import mark_exported
    from ..spaces import load_arch

    if args.format == "reference":
        from ..deliver.reference_run import export_reference

        if args.arch is not None or args.pick is not None:
            raise SupernasError("--format reference writes the whole supernet; drop --arch / --pick")
        out = args.out or f"{args.run}/export"
        make_room_for_export(out, None, args.force)
        print(f"exported: {export_reference(args.run, out)} (the supernet in the AttentiveNAS reference layout)")
        return
    from ..deliver.export import EXPORT_FORMATS

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
        score = cast(dict, header.get("score")) if isinstance(header.get("score"), dict) else {}
        print(f"--pick {args.pick:g}: {describe_pick(entry, unit, score)}, at {net.plan(arch).resolution} px")
    out = args.out or f"{args.run}/export"
    make_room_for_export(out, arch.to_dict(), args.force)
    path = export_arch(net, arch, data, out, args.format, args.bn_batches, batch_size=args.bn_batch_size)
    print(f"exported: {path}")
    for plot in mark_exported(args.run, path.parent):
        print(f"marked in {plot}")


def _import_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("format", choices=["attentivenas"], help="layout of the checkpoint")
    s.add_argument("checkpoint", help="the .pth.tar file ({'state_dict': ...} or a bare state dict)")
    s.add_argument("--out", required=True, help="run directory to write")
    s.add_argument("--space", default="attentivenas", help="its search space (built-in name or space YAML)")
    s.add_argument("overrides", nargs="*", metavar="data.KEY=VALUE",
                   help="the data stage 2 calibrates and evaluates on, e.g. data.path=~/imagenet")


@command("import", "a published supernet (the AttentiveNAS reference checkpoint layout, such as "
         "attentive_nas_pretrained.pth.tar) as a run directory for stage 2", _import_arguments)
def cmd_import(args: argparse.Namespace) -> None:
    from ..deliver.reference_run import import_reference

    run = import_reference(args.checkpoint, args.out, args.space, args.overrides)
    print(f"imported: {run} (space {args.space}); stage 2 on it: supernas search|predictor|export {run} ... "
          "data.path=PATH")
