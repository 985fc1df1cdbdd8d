"""Errors the user can fix: the CLI prints their message on one line and exits non-zero."""


class UserError(Exception):
    """Bad input (a missing file, an empty box, an unknown option...). The message says what to fix."""


def pip_install(extra: str) -> str:
    """How to install an optional extra, for messages: by name once siamtrack is on an index, and from a checkout
    (where `pip install 'siamtrack[extra]'` finds nothing) by path."""
    return f"pip install 'siamtrack[{extra}]' (from a checkout: pip install '.[{extra}]')"
