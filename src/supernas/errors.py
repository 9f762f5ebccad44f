"""Errors a user can act on.

Anything raised as :class:`SupernasError` is a problem with the user's input (a config, an Arch,
a path). The CLI prints it as a one-line message and exits with status 2, never a traceback.
"""


class SupernasError(ValueError):
    """Bad input from the user: the message names the problem and, where it can, the fix."""


def require_int(where: str, value: object, minimum: int, optional: bool = False) -> None:
    """Raise a SupernasError naming `where` unless `value` is an integer (not a bool) >= `minimum`,
    or None when `optional`."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SupernasError(f"{where} must be an integer >= {minimum}{' (or null)' if optional else ''}, "
                            f"got {value!r}")


def shorten(value: object, limit: int = 120) -> str:
    """`value` as an error message shows it (repr), cut to about `limit` characters: an Arch with a
    list of 100,000 numbers should not be echoed whole."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit - 20]}... ({len(text):,} characters)"


class SupernasWarning(UserWarning):
    """A setting that works but probably not as meant (a budget above every Arch's cost); the CLI
    prints it as one line."""


class RunInterrupted(Exception):
    """A run stopped on a signal (Ctrl-C, a scheduler's SIGTERM) after writing its checkpoint; the
    message says at which step and the command that continues it. The CLI exits with 130."""
