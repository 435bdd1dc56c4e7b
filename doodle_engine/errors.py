"""The engine's errors and notes: bad input (one line naming the file and the problem), an
image with nothing to in-paint from, and a ``note:`` line for what a run changed or found."""

import sys


class DoodleError(Exception):
    """A problem with one input file (or one array), reported as ``path: problem``."""

    def __init__(self, path, problem):
        self.path = str(path) if path is not None else "<array>"
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class NothingToInpaint(ValueError):
    """Every pixel is NaN: Doodler's in-painting loop would never end."""


def note(text):
    """One ``note:`` line on standard error, a newline in it escaped (the run goes on)."""
    text = str(text).replace("\r", "\\r").replace("\n", "\\n")
    print(f"note: {text}", file=sys.stderr, flush=True)
