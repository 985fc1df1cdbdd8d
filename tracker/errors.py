"""Errors the user can fix: the CLI prints their message on one line and exits non-zero."""


class UserError(Exception):
    """Bad input (a missing file, an empty box, an unknown option...). The message says what to fix."""
