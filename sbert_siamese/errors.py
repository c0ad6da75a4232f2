"""The project's own exception types.

Every error a user can cause (a bad file, a bad option, a model that cannot be found) is raised as one of
these, with a message that says where the problem is and what was expected.
"""

from __future__ import annotations


class SbertSiameseError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(SbertSiameseError, ValueError):
    """An option or recipe value is invalid; the message lists the valid choices."""


class ModelNotFoundError(SbertSiameseError, FileNotFoundError):
    """A model name or path did not resolve to a loadable model."""


class ModelFormatError(SbertSiameseError, ValueError):
    """A model directory exists but is not in a format we can load (names the file)."""


class DataError(SbertSiameseError, ValueError):
    """A data file or row is malformed.

    ``str(err)`` reads ``path:line: problem``; the parts are kept as attributes for programs. ``reason`` is a
    short stable code for the kind of problem (``empty_text``, ``bad_score``...), used to count skipped rows.
    """

    def __init__(
        self, problem: str, path: str | None = None, line: int | None = None, reason: str | None = None
    ):
        self.problem = problem
        self.path = path
        self.line = line
        self.reason = reason
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{problem}")

    def __reduce__(self):  # whole across processes (a Ray worker raises it, the driver reports it)
        return type(self), (self.problem, self.path, self.line, self.reason)


class OutputError(SbertSiameseError, OSError):
    """Something could not be written (disk full, no permission, a path outside the output folder);
    the message names the path and what to do."""


class TrainingDivergedError(SbertSiameseError, FloatingPointError):
    """The training loss (or gradient norm) became NaN or infinite; the message names the step and the last
    good checkpoint."""


class CheckpointError(SbertSiameseError, ValueError):
    """A checkpoint is missing, incomplete or corrupted, or does not belong to this recipe."""


class ArchiveError(SbertSiameseError, ValueError):
    """A question archive is missing, damaged or belongs to another model, or a request to it is invalid
    (an id that clashes with another question). ``field`` names the argument at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(message)


class IdConflictError(ArchiveError):
    """An id already names another question (in the archive, or earlier in the same write); HTTP 409."""


class UnknownIdError(ArchiveError, LookupError):
    """No (live) question in the archive has this id."""

    def __init__(self, question_id: int):
        self.question_id = question_id
        super().__init__(f"no question with id {question_id} in the archive", field="id")
