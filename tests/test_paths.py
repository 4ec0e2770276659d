"""inrd.paths: output paths checked before any work; write failures are one line saying what was kept."""

import errno
import os

import pytest

from inrd import io, paths


def test_a_new_folder_or_file_under_a_writable_folder_passes(tmp_path):
    assert paths.check_output(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert paths.check_output(tmp_path / "x.png", "file") == tmp_path / "x.png"
    assert not (tmp_path / "a").exists()  # checking writes nothing


def test_every_path_that_cannot_be_written_is_refused_in_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    cases = {
        afile / "sub": "afile is not a writable folder",
        afile / "sub" / "deeper": "afile is not a writable folder",
        afile: "exists and is not a folder",
        tmp_path / "loop": "symbolic-link loop",
        tmp_path / "loop" / "x": "symbolic-link loop",
        tmp_path / "dangling": "symbolic link to .*nowhere, which does not exist",
        tmp_path / ("n" * 300): "more than the 255 the file system takes",
        "": "--out is empty",
    }
    for path, message in cases.items():
        with pytest.raises(ValueError, match=message) as e:
            paths.check_output(path)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="is a folder; give a file name"):
        paths.check_output(tmp_path, "file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(ValueError, match="permission denied"):
        paths.check_output(ro / "out")


@pytest.mark.parametrize("code, reason", [(errno.ENOSPC, "no space left"), (errno.EROFS, "the file system is read-only"), (errno.EDQUOT, "the disk quota")])
def test_a_failed_write_is_one_line_and_leaves_no_partial_file(tmp_path, monkeypatch, code, reason):
    io.write_text(tmp_path / "kept.txt", "earlier output")

    def full(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(paths.OutputError, match=f"cannot write .*new.json: {reason}.*kept in") as e:
        io.write_json(tmp_path / "new.json", {"a": 1})
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]  # the temporary file is gone, the earlier output kept


def test_an_oserror_without_errno_is_not_disguised_as_a_write_failure(tmp_path):
    with pytest.raises(OSError, match="not a disk problem"):
        with paths.atomic_path(tmp_path / "x.png"):
            raise OSError("not a disk problem")
    assert list(tmp_path.iterdir()) == []
