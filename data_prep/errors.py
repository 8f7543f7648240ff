"""The one exception type for mistakes a user can fix; entry points print it as one line and exit 1."""


class UserError(Exception):
    """A problem with the user's input or setup, with the fix in its message."""
