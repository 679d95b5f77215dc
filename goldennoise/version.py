"""The package version (one place; `goldennoise.__version__` and every record's `versions` read it)."""

__version__ = "0.3.0"
