"""Exceptions that the CLI turns into one-line messages and exit codes."""

from __future__ import annotations


class AsrkitError(Exception):
    """Base class: a problem the user can fix; the CLI prints the message without a traceback."""

    exit_code = 1


class InputError(AsrkitError, ValueError):
    """Bad usage or bad input (a missing file, an unreadable audio file, an unknown recipe key).

    Also a ValueError, which is what Python code expects for a bad argument: a caller's `except ValueError`
    around a library call still catches it.
    """

    exit_code = 2


class WorkError(AsrkitError):
    """A failure while doing the work (a download that failed, a training run that diverged)."""

    exit_code = 1


class Interrupted(AsrkitError):
    """Stopped by Ctrl-C after saving what is needed to continue; the message says where and how to resume."""

    exit_code = 130
