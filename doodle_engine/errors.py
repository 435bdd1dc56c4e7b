"""The engine's errors, notes and warnings: bad input (one line naming the file and the
problem), an image with nothing to in-paint from, a ``note:`` line for what a run changed or
found, and renamed arguments (saying when their old names go)."""

import sys
import warnings

#: the version in which the deprecated argument names below are removed
REMOVED_IN = "0.2.0"


class DoodleError(Exception):
    """A problem with one input file, reported as ``path: problem``; without a path (an
    array given to the API, an option) the problem alone."""

    def __init__(self, path, problem):
        self.path = str(path) if path is not None else "<array>"
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if path is not None else problem)


class RemapWarning(UserWarning):
    """A remap that may not do what was meant: a mapping applied by class position, or a
    target name one letter from another class."""


class NothingToInpaint(ValueError):
    """Every pixel is NaN: Doodler's in-painting loop would never end."""


def renamed(func, old, new, old_value, new_value):
    """``new_value``, or ``old_value`` when the caller still used the old name (then a
    DeprecationWarning saying the new name and the version in which the old one goes)."""
    if old_value is None:
        return new_value
    warnings.warn(f"{func}({old}=...) is deprecated and will be removed in version "
                  f"{REMOVED_IN}: use {new}=...", DeprecationWarning, stacklevel=3)
    return old_value


def first_line(exc, limit=200):
    """The first line of an exception's text, cut at ``limit`` ("" when it has none)."""
    text = str(exc)
    return text.splitlines()[0][:limit] if text else ""


def described(exc, limit=200):
    """An exception in one line for an error message: ``TypeName: first line``."""
    return f"{type(exc).__name__}: {first_line(exc, limit)}"


def note(text):
    """One ``note:`` line on standard error, a newline in it escaped (the run goes on)."""
    text = str(text).replace("\r", "\\r").replace("\n", "\\n")
    print(f"note: {text}", file=sys.stderr, flush=True)
