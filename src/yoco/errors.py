"""The one exception type for user errors (bad input, missing files, wrong shapes).

The CLI prints these as a single line and exits with status 2; anything else is a bug and keeps its traceback.
"""


class YocoError(Exception):
    """A problem with the user's input: the message names the file or value and what was wrong."""
