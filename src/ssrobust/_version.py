"""The package version (core: imported by run metadata and the corruption writer without loading
the rest of the package)."""

__version__ = "0.1.0"
