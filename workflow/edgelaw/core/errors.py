"""One exception type for every failure a user can fix; the CLI prints it without a traceback."""


class EdgelawError(Exception):
    """A failure with a message that names the thing at fault and the fix."""
