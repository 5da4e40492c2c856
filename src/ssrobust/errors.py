"""Exceptions that carry a user-facing message (the CLI prints them without a traceback)."""


class SsrobustError(Exception):
    """Base class: the message names the file, key or value and says what was expected."""


class ConfigError(SsrobustError, ValueError):
    """A configuration key or value is wrong."""


class ComponentError(ConfigError, KeyError, TypeError):
    """An unknown component name or wrong options for a registered component (every
    :class:`~ssrobust.registry.Registry`). Also a KeyError and a TypeError, the types these errors
    had before there was one."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(SsrobustError, ValueError):
    """A dataset on disk is missing, malformed or inconsistent."""


class CheckpointError(SsrobustError, RuntimeError):
    """A checkpoint or run directory is missing, corrupt or incompatible."""


class LockedError(SsrobustError, RuntimeError):
    """Another process is writing the same run directory or output folder."""


class DivergenceError(SsrobustError, FloatingPointError):
    """Training produced a non-finite loss or non-finite weights (learning rate, precision, data)."""
