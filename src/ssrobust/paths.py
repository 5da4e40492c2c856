"""Checks on the paths the package writes to: folders that must be folders, run names that stay
inside their ``out_dir``."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError


def check_folder_path(path: str | Path, what: str) -> Path:
    """Raise a one-line :class:`ConfigError` when ``path``, or a folder above it, exists as a file."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            if p == path:
                raise ConfigError(f"{what} {path} is a file, expected a folder")
            raise ConfigError(f"{what} {path} cannot be created: {p} is a file, expected a folder")
    return path


def make_dir(path: str | Path, what: str) -> bool:
    """Create folder ``path`` (and its parents) if needed; ``True`` when this call created it.

    Paths that are files where a folder is expected, and folders that cannot be created, are
    one-line :class:`ConfigError` naming the path.
    """
    path = check_folder_path(path, what)
    if path.is_dir():
        return False
    try:
        path.mkdir(parents=True)
    except FileExistsError:  # created meanwhile by someone else
        return False
    except OSError as e:
        raise ConfigError(f"cannot create {what} {path}: {e.strerror}") from None
    return True


def remove_if_empty(path: Path) -> None:
    """Remove a folder this package created, but only when nothing is left in it."""
    try:
        path.rmdir()
    except OSError:  # not empty (or gone): keep
        pass


def check_run_name(name: str) -> str:
    """A run name is one folder name: not empty, no path separators, no ``..``."""
    if (not name.strip() or "/" in name or "\\" in name or ".." in name or name == "."
            or "\0" in name):
        raise ConfigError(f"name: {name!r} is not a valid run name; expected one folder name "
                          f"(not empty, no '/', '\\' or '..'), e.g. name=rotation_seed0")
    return name
