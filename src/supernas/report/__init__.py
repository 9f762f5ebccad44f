"""`supernas report RUN`: one self-contained HTML page of a run (its Pareto fronts, training curves,
predictor, scored Archs, exported models and the commands that made them) to open or share.

    from supernas.report import write_report
    write_report("runs/quickstart")          # runs/quickstart/report.html

Needs plotly (`pip install "supernas[report]"`)."""
from __future__ import annotations

from pathlib import Path

from ..errors import SupernasError
from ..utils.io import atomic_write_text

__all__ = ["write_report"]


def write_report(run_dir: "str | Path", out: "str | Path | None" = None) -> tuple[Path, list[str]]:
    """Write the report of `run_dir` to `out` (default RUN/report.html); returns its path and the
    notes on what the run lacks (also shown in the page)."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise SupernasError('the report needs plotly: pip install "supernas[report]" (or pip install plotly)') from None
    from .collect import collect
    from .page import render

    contents = collect(run_dir)
    path = Path(out).expanduser() if out is not None else contents.path / "report.html"
    if path.is_dir():  # --out a folder, or RUN/report.html made a folder
        what = f"--out '{out}'" if out is not None else f"'{path}'"
        raise SupernasError(f"{what} is a directory; give the HTML file to write, e.g. {path / 'report.html'}")
    if not path.parent.is_dir():
        raise SupernasError(f"no directory '{path.parent}' to write the report into; create it or choose another --out")
    return atomic_write_text(path, render(contents)), contents.notes
