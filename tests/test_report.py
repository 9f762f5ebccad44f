"""Honest plots (where scores came from, run / data / split, budgets, the exported model, legible
drawings) and `supernas report RUN`: one self-contained HTML page, checked in a real headless
Chromium where one is installed."""
import importlib.util
import json
import shlex
import sys

import pytest
import torch
from tiny_runs import TINY, TINY_NAME

from supernas import get_space
from supernas.cli import main, parse_args
from supernas.search import ParetoEntry, format_table
from supernas.search import plots as results_mod
from supernas.search.pareto import mflops_decimals
from supernas.search.plots import score_label
from supernas.spaces import CostModel
from supernas.sampling import read_pareto_set

from browser import Browser, find_chromium

CHROMIUM = find_chromium()
# the report needs plotly (the report / test extras); the plots of item 7 need matplotlib only
needs_plotly = pytest.mark.skipif(importlib.util.find_spec("plotly") is None, reason='pip install "supernas[report]"')
needs_browser = pytest.mark.skipif(CHROMIUM is None or importlib.util.find_spec("plotly") is None,
                                   reason="no chromium binary (apt-get install chromium) or no plotly")
SEARCH = ["--population", "4", "--mutations", "2", "--crossovers", "2", "--generations", "1", "--bn-batches", "1",
          "--max-batches", "1", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def attentive_run(tmp_path_factory, tiny_run_factory):
    """A tiny supernet run taken through every stage-2 command, as a user would: a supernet-scored
    search, a predictor and its check, a predictor-scored search into RUN/search-pred and an export."""
    torch.set_num_threads(1)
    run = tiny_run_factory(tmp_path_factory.mktemp("report") / "run")
    assert main(["search", str(run), "--budgets", "1,2", *SEARCH]) == 0
    assert main(["predictor", "fit", str(run), "-n", "8", "--holdout", "0.5", "--bn-batches", "1",
                 "--max-batches", "1", "--device", "cpu"]) == 0
    assert main(["predictor", "eval", str(run), "-n", "4", "--bn-batches", "1", "--max-batches", "1",
                 "--device", "cpu"]) == 0
    assert main(["search", str(run), "--budgets", "1,2", "--predictor", str(run / "predictor.npz"),
                 "--out", str(run / "search-pred"), *SEARCH]) == 0
    assert main(["export", str(run), "--pick", "2", "--bn-batches", "1", "--device", "cpu"]) == 0
    return run


@pytest.fixture(scope="module")
def fpnas_run(tmp_path_factory):
    from supernas.fpnas.probabilistic import ProbabilisticSearch
    from tiny_runs import fpnas_config

    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("report-fpnas") / "fp"
    ProbabilisticSearch(fpnas_config(run)).fit()
    return run


@pytest.fixture(scope="module")
def retrain_run(tmp_path_factory):
    from supernas.train.standalone import retrain
    from tiny_runs import standalone_config

    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("report-retrain") / "rt"
    retrain("smallest", standalone_config(run, epochs=1, max_steps=3))
    return run


# ---------------------------------------------------------------------- item 7: honest plots
def test_pareto_json_says_where_each_score_came_from(attentive_run):
    measured = json.loads((attentive_run / "search" / "pareto.json").read_text())
    assert measured["score"] == {"source": "supernet", "split": "search", "images": 100, "bn_batches": 1,
                                 "max_batches": 1}
    assert measured["run"] == str(attentive_run) and "digits" in measured["data"]
    assert measured["budgets"] == [1.0, 2.0] and measured["cost"] == "mflops"
    assert measured["search"]["population"] == 4
    assert score_label(measured) == "top-1 (%) on the search split (100 images)"
    predicted = json.loads((attentive_run / "search-pred" / "pareto.json").read_text())
    assert predicted["score"]["source"] == "predictor"
    assert predicted["score"]["predictor"] == str(attentive_run / "predictor.npz")
    fit = predicted["score"]["fit"]  # what the predictor was fitted on, and how well it ranks
    assert fit["archs"] == 8 and fit["scored"]["split"] == "search"
    # the fit record beside the predictor is the one the search copied
    assert fit == json.loads((attentive_run / "predictor.fit.json").read_text())
    assert score_label(predicted) == "predicted top-1 (%)"
    # readers of the old layout still read it: training's pareto_set reader, the evaluated twin
    space = TINY
    pairs = read_pareto_set(attentive_run / "search" / "pareto.json", space, CostModel(space, 10))
    assert len(pairs) == len(measured["entries"])
    evaluated = json.loads((attentive_run / "search" / "evaluated.json").read_text())
    assert evaluated["score"] == measured["score"] and len(evaluated["entries"]) >= len(measured["entries"])


def test_mflops_get_the_decimals_that_tell_rows_apart():
    space = TINY
    arch = space.smallest()
    entries = [ParetoEntry(arch, m, 90_000, 90.0 + i) for i, m in enumerate([0.6134, 0.6449, 0.8421, 1.2])]
    table = format_table(entries)
    printed = [line.split()[1] for line in table.splitlines()[1:]]
    assert len(set(printed)) == 4, table  # 0.6 and 0.6 before
    assert mflops_decimals([203.41, 203.44, 709.1]) == 2
    assert mflops_decimals([203.4, 1939.3]) == 1
    assert mflops_decimals([0.0123]) == 4  # three significant digits of a tiny Arch
    assert mflops_decimals([]) == 1


def test_front_plot_names_run_data_split_budgets_and_export(attentive_run, monkeypatch):
    drawn = {}

    def capture(path, front, evaluated, xlabel, ylabel, title, budgets, marked):
        drawn.update(path=path, front=front, evaluated=evaluated, ylabel=ylabel, title=title, budgets=budgets,
                     marked=marked)
        return path

    monkeypatch.setattr(results_mod, "_draw_front", capture)
    results_mod.plot_search_results(attentive_run / "search", attentive_run / "export")
    assert "run run" in drawn["title"] and "digits" in drawn["title"] and "supernet-scored" in drawn["title"]
    assert drawn["ylabel"] == "Top-1 (%) on the search split (100 images)"
    assert list(drawn["budgets"]) == [1.0, 2.0]
    exported = json.loads((attentive_run / "export" / "arch.json").read_text())
    ev = json.loads((attentive_run / "search" / "evaluated.json").read_text())["entries"]
    scored = next(e for e in ev if e["arch"] == exported["arch"])
    assert drawn["marked"].cost == scored["mflops"] and drawn["marked"].accuracy == scored["accuracy"]
    results_mod.plot_search_results(attentive_run / "search-pred")
    assert drawn["ylabel"] == "Predicted top-1 (%)" and drawn["marked"] is None
    assert "predictor-scored" in drawn["title"]


def test_export_redraws_the_front_with_the_model_marked(attentive_run, tmp_path, capsys):
    png = attentive_run / "search" / "pareto.png"
    before = png.stat().st_mtime_ns
    assert main(["export", str(attentive_run), "--pick", "1", "--bn-batches", "1", "--device", "cpu",
                 "--out", str(tmp_path / "small")]) == 0
    out = capsys.readouterr().out
    assert f"marked in {png}" in out and png.stat().st_mtime_ns > before


def test_fpnas_plot_has_a_loss_panel_and_an_integer_k_axis(fpnas_run):
    from supernas.fpnas.figures import search_figure

    fig = search_figure(fpnas_run)
    loss, entropy, k = fig.axes[:3]
    labels = [line.get_label() for line in loss.get_lines()]
    assert labels[0] == "train (weight steps)" and labels[1].startswith("validation: search split (32 held-out")
    assert len(loss.get_lines()[1].get_xdata()) == 4  # the four architecture steps after the warm-up
    fig.canvas.draw()
    ticks = [t for t in k.get_yticks() if k.get_ylim()[0] <= t <= k.get_ylim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    title = fig._suptitle.get_text()
    assert "fpnas search, run fp" in title and "digits" in title and "search split" in title
    mflops_legend = [t.get_text() for t in fig.axes[3].get_legend().get_texts()]
    assert any(t.startswith("most likely Arch (result.json)") for t in mflops_legend)


def test_arch_drawing_labels_stages_resolution_kernel_expansion_width():
    from supernas.fpnas.figures import arch_figure

    fig = arch_figure("attentivenas", "a0", title="a0")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "a0: 203.4 MFLOPs, 8.95 M params, input 192\u00d7192, 17 blocks" == ax.get_title()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["kernel", "expansion", "width"]
    stages = [t for t in texts if t.startswith("mb")]
    assert [s.split("\n")[0] for s in stages] == [f"mb{i}" for i in range(1, 8)]
    assert stages[1] == "mb2\n96\u219248"  # the feature map entering and leaving the stage
    assert "input\n192\u00d7192" in texts and "1792" in texts and "head" in texts  # head width
    assert texts.count("6") >= 4 and texts.count("216") == 1  # expansion 6 blocks, the last width


# ---------------------------------------------------------------------- item 8: the report
def _report(run, tmp_path, capsys):
    out = tmp_path / f"{run.name}.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert f"report: {out}" in printed.out
    return out, printed.err


@needs_plotly
def test_report_is_one_file_that_loads_nothing_from_outside(attentive_run, tmp_path, capsys):
    out, err = _report(attentive_run, tmp_path, capsys)
    page = out.read_text()
    assert "<script src=" not in page and "<link" not in page and 'src="http' not in page
    assert "Plotly.newPlot" in page and page.count('class="plotly-graph-div"') >= 3
    assert err == ""  # a complete run: nothing to say is missing
    default = attentive_run / "report.html"
    assert main(["report", str(attentive_run)]) == 0 and default.is_file()


@needs_plotly
def test_report_commands_rebuild_what_made_the_run(attentive_run):
    from supernas.report.collect import collect
    from supernas.report.commands import commands

    lines = [c for c, _ in commands(collect(attentive_run)) if c]
    assert lines[0] == shlex.join(["supernas", "train", str(attentive_run / "config.yaml")])
    parsed = [parse_args(shlex.split(c)[1:]) for c in lines[1:]]
    assert [a.command for a in parsed] == ["predictor", "predictor", "search", "search", "export"]
    fit, check, search, pred_search, export = parsed
    assert (check.action, check.n, check.seed) == ("eval", 4, 0)
    assert (fit.action, fit.n, fit.holdout, fit.bn_batches, fit.max_batches) == ("fit", 8, 0.5, 1, 1)
    assert (search.budgets, search.population, search.generations, search.max_batches) == ("1,2", 4, 1, 1)
    assert search.device == fit.device == "cpu"
    assert search.predictor is None and search.out is None
    assert pred_search.predictor == str(attentive_run / "predictor.npz")
    assert pred_search.out == str(attentive_run / "search-pred")
    assert export.arch == str(attentive_run / "export" / "arch.json") and export.bn_batches == 1


@needs_browser
def test_report_of_a_supernet_run_in_chromium(attentive_run, tmp_path, capsys):
    out, _ = _report(attentive_run, tmp_path, capsys)
    evaluated = json.loads((attentive_run / "search" / "evaluated.json").read_text())["entries"]
    front = json.loads((attentive_run / "search" / "pareto.json").read_text())["entries"]
    with Browser.launch(CHROMIUM) as b:
        page = b.open(out.as_uri())
        assert page.eval("document.body.getAttribute('data-ready')") == "1"
        counts = page.eval("""Object.fromEntries(Array.from(document.querySelectorAll('#pareto-0 .trace.scatter'))
            .map(t => [t.getAttribute('class').split(' ').pop(), t.querySelectorAll('path.point').length]))""")
        # the front's Archs are drawn once, in red
        assert counts == {"traceevaluated": len(evaluated) - len(front), "tracefront": len(front), "traceexported": 1}
        # hover each point of the front: its label tells its MFLOPs, not a grey neighbour's
        label_before = None
        for k, e in enumerate(sorted(front, key=lambda e: e["mflops"])):
            x, y = page.eval(f"""(() => {{const p = document.querySelectorAll('#pareto-0 .tracefront path.point')[{k}];
                p.scrollIntoView({{block: 'center'}}); const r = p.getBoundingClientRect();
                return [r.x + r.width / 2, r.y + r.height / 2];}})()""")
            page.mouse("mouseMoved", x, y)
            label = page.wait_for("document.querySelector('#pareto-0 .hoverlayer').textContent",
                                  lambda text: text and "MFLOPs" in text and text != label_before)
            label_before = label
            assert f"{e['mflops']:.4g} MFLOPs" in label
        # click the last one: its drawing and choices appear below the plot
        page.click(x, y)
        shown = page.eval("document.getElementById('view-0').getAttribute('data-shown')")
        assert json.loads(shown) == max(front, key=lambda e: e["mflops"])["arch"]
        assert page.eval("document.querySelectorAll('#view-0 img').length") == 1
        # the table of scored Archs sorts by accuracy on a click of its header
        page.eval("document.querySelectorAll('#table-0 th')[3].click()")
        accs = page.eval("Array.from(document.querySelectorAll('#table-0 tbody tr')).map(r => "
                         "parseFloat(r.cells[3].getAttribute('data-v')))")
        assert len(accs) == len(evaluated) and accs == sorted(accs)
        curves = page.eval("document.querySelectorAll('#curves .trace.scatter').length")
        assert curves >= 4  # loss, distillation loss, lr, images/s and the validation top-1 curves
        text = page.eval("document.body.innerText")
        assert "Kendall tau on the 50% held out" in text and "predicted top-1 (%)" in text
        assert "On 4 Archs it was not fitted on: Kendall tau" in text
        assert page.eval("document.querySelectorAll('#predictor-check .trace.scatter path.point').length") == 4
        assert "supernas search" in text and "supernas export" in text
        assert page.errors == [] and page.eval("window.reportErrors") == []


@needs_browser
def test_report_of_an_fpnas_run_in_chromium(fpnas_run, tmp_path, capsys):
    out, err = _report(fpnas_run, tmp_path, capsys)
    space = get_space(json.loads((fpnas_run / "result.json").read_text())["space_definition"])
    fields = {d.name.rpartition(".")[2] for d in space.dims}
    with Browser.launch(CHROMIUM) as b:
        page = b.open(out.as_uri())
        assert page.eval("document.querySelectorAll('#distribution .heatmaplayer .hm').length") == len(fields)
        assert page.eval("document.querySelectorAll('#distribution .slider-label-group').length") == 2  # 2 epochs
        # the slider at epoch 1 shows dist_epoch1.pt (the page opens at the last epoch)
        x, y = page.eval("""(() => {const step = document.querySelectorAll('#distribution .slider-label-group')[0];
            const rail = document.querySelector('#distribution .slider-rail-touch-rect');
            rail.scrollIntoView({block: 'center'}); const a = step.getBoundingClientRect();
            const r = rail.getBoundingClientRect(); return [a.x + a.width / 2, r.y + r.height / 2];})()""")
        page.click(x, y)
        first = torch.load(fpnas_run / "dist_epoch1.pt", weights_only=True)["marginals"][space.dims[0].name]
        shown = page.eval("document.getElementById('distribution').data[0].z[0]")
        assert shown[:len(first)] == pytest.approx(first)
        last = torch.load(fpnas_run / "dist_epoch2.pt", weights_only=True)["marginals"][space.dims[0].name]
        assert first != pytest.approx(last)  # the architecture steps of epoch 2 moved it
        titles = page.eval("Array.from(document.querySelectorAll('#curves .annotation-text')).map(t => t.textContent)")
        assert {"loss", "K", "entropy (nats)"} <= set(titles)
        text = page.eval("document.body.innerText")
        assert "Most likely Arch" in text and "supernas fpnas" in text
        assert page.eval("document.querySelectorAll('#result img').length") == 1
        assert page.errors == []


@needs_browser
def test_report_of_a_retrain_in_chromium(retrain_run, tmp_path, capsys):
    out, _ = _report(retrain_run, tmp_path, capsys)
    with Browser.launch(CHROMIUM) as b:
        page = b.open(out.as_uri())
        text = page.eval("document.body.innerText")
        assert "supernas retrain smallest" in text and "top1" in text
        assert page.eval("document.querySelectorAll('#curves .trace.scatter').length") >= 2
        assert page.errors == []


@needs_plotly
def test_report_says_what_is_missing_or_damaged(attentive_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "damaged"
    shutil.copytree(attentive_run, run, ignore=shutil.ignore_patterns("checkpoint.pt", "tensorboard", "*.pt"))
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "step": 99, "lo')  # a crash in the middle of a line
    (run / "search-pred" / "pareto.json").write_text("{not json")
    (run / "search" / "evaluated.json").unlink()
    out, err = _report(run, tmp_path, capsys)
    assert "metrics.jsonl: 1 damaged line(s) skipped" in err
    assert "search-pred/: " in err and "is not JSON" in err
    assert "search/: no evaluated.json" in err
    page = out.read_text()
    assert "What is missing" in page and 'id="pareto-0"' in page and 'id="pareto-1"' not in page


@needs_plotly
def test_report_bad_inputs_are_one_line_errors(tmp_path, capsys, monkeypatch):
    def error(argv):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("supernas report: error:")
        return err

    assert "no run directory at" in error(["report", str(tmp_path / "nope")])
    (tmp_path / "file.txt").write_text("x")
    assert "is a file, not a run directory" in error(["report", str(tmp_path / "file.txt")])
    (tmp_path / "empty").mkdir()
    assert "is not a run directory" in error(["report", str(tmp_path / "empty")])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("")
    (tmp_path / "run" / "config.yaml").write_text("sampler: {kind: uniform}\n")
    assert "no directory" in error(["report", str(tmp_path / "run"), "--out", str(tmp_path / "no" / "r.html")])
    assert "is a folder; give --out the file" in error(["report", str(tmp_path / "run"), "--out", str(tmp_path)])
    monkeypatch.setitem(sys.modules, "plotly", None)
    assert 'pip install "supernas[report]"' in error(["report", str(tmp_path / "run")])


@needs_plotly
def test_report_of_an_empty_run_shows_what_exists(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"sampler: {{kind: uniform}}\nspace: {TINY_NAME}\n")
    out, err = _report(run, tmp_path, capsys)
    assert "no metrics.jsonl" in err and "no search results" in err and "no exported model" in err
    assert "supernas train" in out.read_text()


def test_arch_summary_groups_choices_by_stage():
    from supernas.report.figures import arch_summary

    arch = TINY.smallest().to_dict()
    lines = arch_summary(arch).split("<br>")
    assert lines[0] == f"resolution: {arch['resolution']}"
    assert lines[2] == f"mb1: width {arch['mb1.width']}, depth {arch['mb1.depth']}, kernel {arch['mb1.kernel']}, " \
                       f"expand {arch['mb1.expand']}"


@needs_plotly
def test_report_of_a_latency_search_folder(attentive_run, tmp_path):
    """A search --out folder on its own, its budgets in ms: the front is accuracy against latency and
    the rebuilt command searches the run it came from under latency budgets."""
    from supernas.report.collect import collect
    from supernas.report.commands import commands
    from supernas.report.figures import pareto_figure

    folder = tmp_path / "lat"
    folder.mkdir()
    for name in ("pareto", "evaluated"):
        data = json.loads((attentive_run / "search" / f"{name}.json").read_text())
        data["cost"], data["budgets"] = "latency_ms", [2.5, 3.0]
        data["search"].update(latency_batch=1, latency_warmup=1, latency_repeats=2)
        for i, e in enumerate(data["entries"]):
            e["latency_ms"] = 2.0 + 0.1 * i
        (folder / f"{name}.json").write_text(json.dumps(data))
    c = collect(folder)
    assert c.kind == "search" and len(c.searches) == 1
    fig = pareto_figure(c, c.searches[0], None)
    assert fig.layout.xaxis.title.text == "latency (ms)"
    front = json.loads((folder / "pareto.json").read_text())["entries"]
    assert list(fig.data[0].x) == sorted(e["latency_ms"] for e in front)
    assert sorted(s.x0 for s in fig.layout.shapes) == [2.5, 3.0]  # the budgets, in ms
    line = next(cmd for cmd, _ in commands(c) if cmd)
    args = parse_args(shlex.split(line)[1:])
    assert (args.run, args.cost, args.budgets, args.latency_repeats) == (str(attentive_run), "latency", "2.5,3", 2)
    assert args.out == str(folder)


def test_a_rebuilt_search_command_keeps_its_strategy_settings_and_a_run_less_search(tmp_path):
    from types import SimpleNamespace

    from supernas.report.commands import _search_command

    front = {"run": None, "budgets": [300.0], "cost": "mflops", "score": {"source": "predictor", "predictor": "p.npz"},
             "search": {"strategy": "evolution", "population": 8, "mutations": 4, "crossovers": 4, "generations": 2,
                        "seed": 0, "overrides": [], "options": ["search.edge=0"], "device": "cpu"}}
    line = _search_command(tmp_path, SimpleNamespace(front=front, path=tmp_path / "alone"))
    args = parse_args(shlex.split(line)[1:])
    assert args.run is None and args.overrides == ["search.edge=0"] and args.predictor == "p.npz"
    assert args.out == str(tmp_path / "alone") and args.budgets == "300"


def test_a_report_path_that_is_a_directory_is_one_line(run_copy, tmp_path, capsys):
    (run_copy / "report.html").mkdir()  # the default page's name taken by a folder
    assert main(["report", str(run_copy)]) == 2
    err = capsys.readouterr().err
    assert f"'{run_copy / 'report.html'}' is a directory; give the HTML file to write" in err and "Traceback" not in err
    assert main(["report", str(run_copy), "--out", str(tmp_path)]) == 2
    assert f"--out '{tmp_path}' is a folder; give --out the file to write" in capsys.readouterr().err
