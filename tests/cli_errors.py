"""How the tests read a command's error: one line on stderr, no traceback."""


def one_line(capsys) -> str:
    """The error, one line (what a command logged before it, a run's header, is not part of it)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("supernas ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]
