"""The error of a downstream evaluation that cannot run as asked (``ssl-skel`` prints it and exits with 1)."""

from __future__ import annotations

__all__ = ["EvaluationError"]


class EvaluationError(ValueError):
    """An evaluation that cannot run on the given data or runs: the message names what and why."""
