"""Exceptions that carry a user-facing message (the CLI prints them without a traceback)."""


class SsrobustError(Exception):
    """Base class: the message names the file, key or value and says what was expected."""


class ConfigError(SsrobustError, ValueError):
    """A configuration key or value is wrong."""


class DataError(SsrobustError, ValueError):
    """A dataset on disk is missing, malformed or inconsistent."""


class CheckpointError(SsrobustError, RuntimeError):
    """A checkpoint or run directory is missing, corrupt or incompatible."""


class LockedError(SsrobustError, RuntimeError):
    """Another process is writing the same run directory or output folder."""


class DivergenceError(SsrobustError, FloatingPointError):
    """Training produced a non-finite loss or non-finite weights (learning rate, precision, data)."""
