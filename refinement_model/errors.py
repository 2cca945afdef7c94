"""Errors that name the offending file and the problem.

Every loader, checkpoint reader and project-file reader raises :class:`InputError` (or a
subclass) for bad input, so that the command line can print one clear line and exit with
status 2, and the app can show a dialog instead of a traceback.
"""

from __future__ import annotations

import os


class EtmiraError(Exception):
    """Base class of all errors this project raises on purpose."""


class InputError(EtmiraError, ValueError):
    """Bad input that came from a file (or a value read from one).

    Parameters
    ----------
    path : str or os.PathLike or None
        The file that is at fault; ``None`` when no single file is (the message then stands alone).
    problem : str
        What is wrong, in words a user understands.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{self.path}: {problem}")


class CheckpointError(InputError):
    """A model checkpoint that is missing, corrupt or of the wrong kind."""


class ProjectError(InputError):
    """A project file that is missing, corrupt, locked or of a foreign schema."""


class Cancelled(EtmiraError):
    """Long work stopped because its cancel check returned True."""
