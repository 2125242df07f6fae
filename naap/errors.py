"""The one exception type users see: a clear, one-line message."""


class NaapError(Exception):
    """Bad input or a missing resource. The CLI prints it as one line and exits 2.

    The message names the file and, where there is one, the field at fault.
    """
