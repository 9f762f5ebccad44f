"""Errors a user can act on.

Anything raised as :class:`SupernasError` is a problem with the user's input (a config, an Arch,
a path). The CLI prints it as a one-line message and exits with status 2, never a traceback.
"""


class SupernasError(ValueError):
    """Bad input from the user: the message names the problem and, where it can, the fix."""
