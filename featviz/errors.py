"""Error types shared by the library and the command line.

Every mistake a user can make (bad path, corrupt file, impossible spec) raises a
:class:`FeatvizError`. The CLI turns it into one line on stderr and exit code 2;
anything else is an internal error (exit code 1).
"""

from __future__ import annotations


class FeatvizError(Exception):
    """A user-facing error: the message is one line naming the problem and the fix."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")

    def one_line(self) -> str:
        text = self.message if self.hint is None else f"{self.message}; {self.hint}"
        return " ".join(text.split())


class CheckpointError(FeatvizError):
    """A checkpoint folder is missing, corrupt, or does not match its card."""


class DataError(FeatvizError):
    """A dataset is missing, malformed, or unknown."""


class DivergenceError(FeatvizError):
    """Training or rendering produced NaN/Inf (quadratic networks can explode)."""


class SpecError(FeatvizError):
    """A neuron, attack, or sweep specification cannot be satisfied."""
