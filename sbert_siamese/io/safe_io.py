"""Writing files so that nothing half-written is ever left behind, nothing lands outside the folder it
belongs to, and a full disk or a missing permission reads as a clear message, not a library traceback.

- ``staged_dir(final)``: build a folder under a temporary name beside ``final``, rename it into place
  when complete; on any error the temporary folder is removed and ``final`` is untouched.
- ``atomic_write_bytes`` / ``atomic_write_text``: one file, written to a temporary name, flushed and
  renamed over the target.
- ``inside(root, relative)``: ``root / relative``, refused if it resolves outside ``root`` (``..``,
  absolute paths, symlinks pointing out).
- ``writing(path)``: turns ``OSError`` (disk full, permission denied, read-only file system) into
  ``OutputError`` naming the path and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError

_ADVICE = {
    errno.ENOSPC: ("no space left on the device (disk full)", "free some space or choose another folder"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or choose another folder"),
    errno.EACCES: ("permission denied", "choose a folder you can write to, or fix its permissions"),
    errno.EPERM: ("operation not permitted", "choose a folder you can write to, or fix its permissions"),
    errno.EROFS: ("read-only file system", "choose a folder on a writable file system"),
}


def output_error(exc: OSError, path: str | Path, what: str = "output") -> OutputError:
    """An ``OutputError`` for ``exc`` raised while writing ``what`` at ``path``."""
    problem, advice = _ADVICE.get(exc.errno, (exc.strerror or str(exc), "check the path and try again"))
    return OutputError(f"cannot write {what} at {path}: {problem}; {advice}")


# safetensors and tokenizers (Rust) report I/O failures as plain exceptions ending in "(os error 28)".
_LIBRARY_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def describe_os_error(exc: OSError) -> str:
    """``path: problem; what to do`` for an ``OSError`` (the CLI's one-line message)."""
    problem, advice = _ADVICE.get(exc.errno, (exc.strerror or str(exc), "check the path and try again"))
    where = exc.filename if exc.filename is not None else "a file"
    return f"{where}: {problem}; {advice}"


@contextlib.contextmanager
def writing(path: str | Path, what: str = "output") -> Iterator[None]:
    """Convert any ``OSError`` raised inside the block (and the plain "os error N" exceptions of Rust-backed
    libraries such as safetensors) into an ``OutputError`` naming ``path``."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        raise output_error(exc, path, what) from None
    except Exception as exc:
        match = _LIBRARY_OS_ERROR.search(str(exc))
        if match is None:
            raise
        code = int(match.group(1))
        raise output_error(OSError(code, os.strerror(code)), path, what) from None


def inside(root: str | Path, relative: str | Path, what: str = "path") -> Path:
    """``root / relative``, refused (``OutputError``) when it is absolute or resolves outside ``root``."""
    root = Path(root)
    relative_path = Path(relative)
    if relative_path.is_absolute() or relative_path.drive:
        raise OutputError(f"{what} {str(relative)!r} must be relative to {root}, not an absolute path")
    target = root / relative_path
    base = root.resolve()
    resolved = target.resolve()
    if resolved != base and base not in resolved.parents:
        raise OutputError(f"{what} {str(relative)!r} leads outside {root}; refusing to use it")
    return target


def replaces_a_protected_folder(path: str | Path) -> bool:
    """True when replacing ``path`` as a whole would remove the current folder (or a folder holding it), the
    home folder or ``/``: no save or ``--overwrite`` may do that."""
    resolved, cwd = Path(path).resolve(), Path.cwd().resolve()
    return resolved == cwd or resolved in cwd.parents or resolved in (Path.home().resolve(), Path("/"))


def safe_name(name: str, what: str = "name") -> str:
    """A single file-name component (no separators, not '.' or '..'), for names that come from recipes."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise OutputError(f"{what} {name!r} cannot be used in a file name (no '/', '\\', '.' or '..')")
    return name


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform / file system allows it
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes, what: str = "file") -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, flushed then renamed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    with writing(path, what):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str, what: str = "file") -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), what)


def staging_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.incomplete-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def staged_dir(final: str | Path, what: str = "output folder", carry: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a new empty folder beside ``final``; when the block ends without error it replaces ``final``
    (an existing ``final`` is renamed aside first and removed only after the new one is in place).

    ``carry``: names of entries of the old ``final`` (e.g. ``checkpoints``) moved into the new folder after
    the swap, instead of being removed with the old folder. A symlink at ``final`` is followed: the link
    stays and its target is replaced.

    On an error the staging folder is removed and the old folder is put back if it had been moved aside, so
    ``final`` is as it was. A process killed between the two renames leaves the old folder as
    ``.NAME.old-*`` beside a missing ``final``: ``recover(final)`` (called before each run writes there)
    puts it back."""
    final = Path(final)
    if final.is_symlink():
        final = final.resolve()
    recover(final)
    stage = staging_path(final)
    with writing(final, what):
        final.parent.mkdir(parents=True, exist_ok=True)
        stage.mkdir()
    old = None
    try:
        with writing(final, what):
            yield stage
            for file in stage.rglob("*"):  # the data reaches the disk before the rename makes it visible
                if file.is_file():
                    with open(file, "rb") as fh:
                        os.fsync(fh.fileno())
            for name in carry:  # must not exist in the new folder: the old one's entry moves in below
                if (stage / name).exists():
                    raise OutputError(
                        f"{what}: {name} is written by the new content and cannot be carried over"
                    )
            if final.exists():
                old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
                os.replace(final, old)
            os.replace(stage, final)
            _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if old is not None and old.exists() and not final.exists():
            os.replace(old, final)  # the swap did not happen: the old folder goes back
        raise
    if old is not None:
        with writing(final, what):
            for name in carry:
                if (old / name).exists():
                    os.replace(old / name, final / name)
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def recover(final: str | Path) -> None:
    """Undo a swap that a killed process left half done: ``final`` missing and exactly one
    ``.NAME.old-*`` beside it, which is renamed back. Leftover ``.NAME.incomplete-*`` staging folders
    (never complete by construction) are removed."""
    final = Path(final)
    parent = final.parent
    if not parent.is_dir():
        return
    with writing(final, "a left-over folder"):
        for entry in parent.glob(f".{final.name}.incomplete-*"):
            shutil.rmtree(entry, ignore_errors=True)
        olds = sorted(parent.glob(f".{final.name}.old-*"))
        if not final.exists() and len(olds) == 1:
            os.replace(olds[0], final)
