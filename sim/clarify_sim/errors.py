"""Exceptions for invalid input, which the command line reports in one line."""


class InputError(ValueError):
    """Invalid input from the caller: a bad name, file, setting or model.

    The message names the value at fault and what to do. The command line prints it
    without a traceback and exits with status 2.
    """


class UnknownTaskError(InputError):
    """A task name that Meta-World v3 does not define."""


class DatasetError(InputError):
    """A dataset file that cannot be read or does not match the dataset layout."""


class ManifestError(InputError):
    """A policy manifest that is missing, malformed or does not match its model."""
