"""Errors the engine raises for bad input: always one line naming the file and the problem."""


class DoodleError(Exception):
    """A problem with one input file (or one array), reported as ``path: problem``."""

    def __init__(self, path, problem):
        self.path = str(path) if path is not None else "<array>"
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
