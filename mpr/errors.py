"""Errors users can act on. The CLI prints their message as one line, no traceback."""


class MprError(Exception):
    """A failure with a message meant for the user (exit code 1)."""

    exit_code = 1


class InputError(MprError):
    """Bad input: source, brands file, profile or override (exit code 2)."""

    exit_code = 2
