"""The one exception type for user mistakes.

A ``UserError`` is a bad config value, a missing or malformed file, or a checkpoint of the
wrong kind. The CLI and the Snakemake adapters print its message as one line and exit
non-zero, without a traceback; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake the user can fix; the message names the file or key and what was expected."""
