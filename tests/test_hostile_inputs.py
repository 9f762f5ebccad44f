"""Hostile inputs end in one line and exit status 2, never a traceback, a hang or silent damage
(issue 21, items 2 to 8): spaces, Arch JSON, numbers, output flags, silently wrong settings, hangs
and the tracebacks of a hostile trial."""
import json
import os
import subprocess
import sys

import pytest

from supernas.cli import main

TINY = "attentivenas-tiny"


def one_line(capsys):
    """The error, one line (what a command logged before it is not part of it)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("supernas ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def refused(capsys, argv, *messages):
    """`supernas ARGV` exits 2 with one line holding every message."""
    assert main(argv) == 2
    line = one_line(capsys)
    for m in messages:
        assert m in line, line
    return line


def supernas(*argv, timeout=120, stdin=None, cwd=None):
    """The command in a fresh process (hangs and file descriptors are its own)."""
    return subprocess.run([sys.executable, "-m", "supernas.cli", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, stdin=stdin, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})


# ---------------------------------------------------------------------------- item 4: numbers
@pytest.mark.parametrize("budgets, message", [
    ("1:1e300:1e-300", "holds inf budgets; at most 1000"),
    ("1:1e12:1", "holds 1e+12 budgets; at most 1000"),
    ("3,,4", "'3,,4' has an empty item"),
    ("3,", "'3,' has an empty item"),
    ("1_000", "without underscores, got '1_000'"),
    ("1e309", "must be finite"),
    ("nan", "must be finite"),
])
def test_budgets_that_would_not_fit_are_refused_before_anything_runs(tmp_path, capsys, budgets, message):
    refused(capsys, ["search", str(tmp_path / "no-run"), "--budgets", budgets], message)


@pytest.mark.parametrize("argv, message", [
    (["predictor", "fit", "RUN", "-n", "1e9"], "-n must be at most 100,000, got 1e9"),
    (["predictor", "fit", "RUN", "-n", "0"], "-n must be at least 1, got 0"),
    (["predictor", "offline-sets", "RUN", "-n", "1e12"], "-n must be at most 10,000,000"),
    (["predictor", "fit", "RUN", "-n", "1_000"], "without underscores"),
    (["predictor", "fit", "RUN", "-n", "2.5"], "-n must be a whole number, got 2.5"),
    (["sample", "--space", TINY, "-n", "1e9"], "-n must be at most 1,000,000"),
    (["sample", "--space", TINY, "--max-mflops", "1e309"], "--max-mflops must be finite"),
    (["sample", "--space", TINY, "--seed", "-1"], "--seed must be at least 0, got -1"),
    (["sample", "--space", TINY, "--seed", str(2**64)], "--seed must be at most"),
    (["export", "RUN", "--pick", "1e309"], "--pick must be finite"),
    (["export", "RUN", "--pick", "0"], "--pick=0 is out of range: above 0"),
])
def test_counts_and_numbers_are_read_strictly_and_bounded(tmp_path, capsys, argv, message):
    refused(capsys, [str(tmp_path / "no-run") if a == "RUN" else a for a in argv], message)


def test_the_help_says_how_numbers_are_read(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "no underscores (1_000 is refused)" in " ".join(capsys.readouterr().out.split())
