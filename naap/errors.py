"""The one exception type users see: a clear, one-line message."""


class NaapError(Exception):
    """Bad input or a missing resource. The CLI prints it as one line and exits 2.

    The message names the file and, where there is one, the field at fault.
    """


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none): a library's
    error quoted inside a one-line NaapError."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
