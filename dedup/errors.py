"""The job's errors that a person fixes, each with the exit code ``dedup run`` gives it.

``dedup run`` exits 0 on success; 1 on an unexpected error (``--debug`` shows the traceback); 2 for a
bad option or an ``--input`` that does not exist (:class:`InputNotFound`, checked before Ray starts for
local paths); 3 for a missing or wrong model file; 4 when a stage failed (the same command resumes);
5 when the inputs hold no image (:class:`NoImages`: no file found, or not one could be read and decoded
as an image); 6 when ``--output`` cannot be written
(:class:`OutputNotWritable`, checked before Ray starts); 130 when interrupted (Ctrl-C).
"""
from __future__ import annotations


class JobError(RuntimeError):
    """A one-line message naming what to fix; ``exit_code`` is what ``dedup run`` exits with."""

    exit_code = 1


class InputNotFound(JobError):
    exit_code = 2


class NoImages(JobError):
    exit_code = 5


class OutputNotWritable(JobError):
    exit_code = 6


__all__ = ["JobError", "InputNotFound", "NoImages", "OutputNotWritable"]
