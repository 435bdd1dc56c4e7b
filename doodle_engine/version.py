"""The engine's version, written once: the package, the command line, reports and
pyproject.toml (``dynamic = ["version"]``) all read it here."""

__version__ = "0.1.0"
