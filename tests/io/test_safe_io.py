"""safe_io: staged folders replace their target only when complete, roll back on failure, recover from a
kill between the two renames, carry entries over, follow symlinks; OSError becomes a one-line message."""

from __future__ import annotations

import errno
import os

import pytest

from sbert_siamese.errors import OutputError
from sbert_siamese.io import safe_io


def make_old(folder):
    folder.mkdir()
    (folder / "model.txt").write_text("old")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "step-1").write_text("ckpt")


def test_replaces_only_when_complete_and_carries_entries(tmp_path):
    final = tmp_path / "out"
    make_old(final)
    with safe_io.staged_dir(final, carry=("checkpoints",)) as stage:
        (stage / "model.txt").write_text("new")
        assert (final / "model.txt").read_text() == "old"  # nothing visible before the end
    assert (final / "model.txt").read_text() == "new"
    assert (final / "checkpoints" / "step-1").read_text() == "ckpt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no hidden leftovers


def test_an_error_inside_leaves_the_old_folder_and_its_checkpoints(tmp_path):
    final = tmp_path / "out"
    make_old(final)
    with pytest.raises(RuntimeError), safe_io.staged_dir(final, carry=("checkpoints",)) as stage:
        (stage / "model.txt").write_text("half")
        raise RuntimeError("crash while writing")
    assert (final / "model.txt").read_text() == "old"
    assert (final / "checkpoints" / "step-1").read_text() == "ckpt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_second_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    final = tmp_path / "out"
    make_old(final)
    real = os.replace

    def replace(src, dst):
        if ".incomplete-" in str(src):  # stage -> final fails (e.g. quota reached)
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        return real(src, dst)

    monkeypatch.setattr(safe_io.os, "replace", replace)
    with pytest.raises(OutputError, match="disk quota exceeded"), safe_io.staged_dir(final) as stage:
        (stage / "model.txt").write_text("new")
    assert (final / "model.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_recover_after_a_kill_between_the_two_renames(tmp_path):
    final = tmp_path / "out"
    make_old(final)
    os.replace(final, tmp_path / ".out.old-1234abcd")  # killed here: the new one never arrived
    (tmp_path / ".out.incomplete-5678abcd").mkdir()
    safe_io.recover(final)
    assert (final / "model.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_symlink_stays_and_its_target_is_replaced(tmp_path):
    real = tmp_path / "real"
    make_old(real)
    link = tmp_path / "link"
    link.symlink_to(real)
    with safe_io.staged_dir(link) as stage:
        (stage / "model.txt").write_text("new")
    assert link.is_symlink() and (link / "model.txt").read_text() == "new"
    assert (real / "model.txt").read_text() == "new"


def test_inside_and_safe_name(tmp_path):
    (tmp_path / "a").mkdir()
    assert safe_io.inside(tmp_path, "a/b") == tmp_path / "a" / "b"
    for bad in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(OutputError):
            safe_io.inside(tmp_path, bad)
    (tmp_path / "out").symlink_to("/tmp")
    with pytest.raises(OutputError, match="leads outside"):
        safe_io.inside(tmp_path, "out/x")
    assert safe_io.safe_name("sts-test") == "sts-test"
    for bad in ("", ".", "..", "a/b", "a\\b"):
        with pytest.raises(OutputError):
            safe_io.safe_name(bad)


def test_os_errors_read_as_one_line_with_advice(tmp_path):
    with pytest.raises(OutputError) as err, safe_io.writing(tmp_path / "x", "the model"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert str(err.value) == (
        f"cannot write the model at {tmp_path / 'x'}: no space left on the device (disk full); "
        "free some space or choose another folder"
    )
    with pytest.raises(OutputError, match="disk full"), safe_io.writing(tmp_path, "shards"):
        raise Exception("Error while serializing: IoError(Os { code: 28 }) (os error 28)")
    with pytest.raises(ValueError), safe_io.writing(tmp_path):  # not an I/O error: unchanged
        raise ValueError("something else")
    message = safe_io.describe_os_error(PermissionError(errno.EACCES, "Permission denied", "/x/y"))
    assert message == "/x/y: permission denied; choose a folder you can write to, or fix its permissions"
