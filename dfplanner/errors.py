"""The one exception type users see: the CLI turns it into a one-line message and exit code 2."""


class DfplannerError(Exception):
    """Bad input from the user (a file, a flag, an observation): the message names what and where."""
