"""Errors a user can act on: what happened, the likely cause, the fix.

Every error that reaches the command line is a :class:`ThreadwiseError`; the
CLI prints its three parts and exits with its ``exit_code`` (2 for bad input),
never with a traceback.  Library callers catch the same class, or the
``ValueError`` / ``TypeError`` it also derives from where that is the natural type.
"""
from __future__ import annotations


class ThreadwiseError(Exception):
    """An error with three parts: ``what`` happened, ``why`` (likely cause), ``fix``."""

    exit_code = 2

    def __init__(self, what: str, why: str = "", fix: str = "") -> None:
        self.what, self.why, self.fix = what, why, fix
        super().__init__(self.message())

    def message(self) -> str:
        parts = [self.what.rstrip(".") + "."]
        if self.why:
            parts.append("Likely cause: " + self.why.rstrip(".") + ".")
        if self.fix:
            parts.append("Fix: " + self.fix.rstrip(".") + ".")
        return "\n".join(parts)


class UsageError(ThreadwiseError, ValueError):
    """Bad input at a public boundary (an unknown name, a number out of range)."""


class ResultsFileError(ThreadwiseError, ValueError):
    """A results file that can't be read, is truncated, or has another schema."""


class OutputError(ThreadwiseError):
    """An output file (results, report, export) that can't be written."""


class InterpreterError(ThreadwiseError):
    """A target interpreter that doesn't exist, crashes, hangs or prints garbage."""
