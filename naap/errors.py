"""The one exception family users see: NaapError, with a clear, one-line message.

Each kind of bad input has its subclass that is also the matching builtin, so that both
`except naap.NaapError` and `except ValueError` (KeyError, TypeError, ImportError) catch it.
"""


class NaapError(Exception):
    """Bad input or a missing resource. The CLI prints it as one line and exits 2.

    The message names the file and, where there is one, the field at fault.
    """


class InvalidValue(NaapError, ValueError):
    """A value outside its valid range; the message states the range."""


class InvalidType(NaapError, TypeError):
    """An argument of the wrong kind; the message says what to give."""


class UnknownKey(NaapError, KeyError):
    """A name (a column, a recipe) that is not among the known ones; the message lists them."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingExtra(NaapError, ImportError):
    """A command or call that needs a library of an extra that is not installed; says which to install."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none): a library's
    error quoted inside a one-line NaapError."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
