"""Errors that name the file and the problem, so users can fix their data without a traceback."""

from __future__ import annotations


class PanoramaError(Exception):
    """Base class: anything the pipeline reports to users as a one-line message."""


class DataError(PanoramaError):
    """A problem with one input file: the message names the file and what is wrong with it."""

    def __init__(self, path, problem: str, case_id: str | None = None):
        self.path = str(path)
        self.problem = problem
        self.case_id = case_id
        where = f"case {case_id}: " if case_id else ""
        super().__init__(f"{where}{self.path}: {problem}")


class ConfigError(PanoramaError):
    """A configuration value that cannot work (beyond what the schema catches)."""
