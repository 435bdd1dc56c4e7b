"""The engine's errors: bad input (one line naming the file and the problem), and an image
with nothing to in-paint from."""


class DoodleError(Exception):
    """A problem with one input file (or one array), reported as ``path: problem``."""

    def __init__(self, path, problem):
        self.path = str(path) if path is not None else "<array>"
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class NothingToInpaint(ValueError):
    """Every pixel is NaN: Doodler's in-painting loop would never end."""
