"""Atomic writes: no half-written file, no temp file left, permissions kept."""
from __future__ import annotations

import os
import stat

import pytest

from workbench.fileio import current_umask, write_bytes_atomic, write_json_atomic, write_text_atomic


def test_a_rewrite_keeps_the_files_permissions_and_a_new_file_follows_the_umask(tmp_path):
    path = tmp_path / "current.toml"
    write_text_atomic(path, "a = 1\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask()     # not mkstemp's 0600
    os.chmod(path, 0o640)
    write_text_atomic(path, "a = 2\n")
    assert path.read_text() == "a = 2\n" and stat.S_IMODE(path.stat().st_mode) == 0o640


def test_the_umask_is_read_without_changing_it():
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027 and os.umask(0o027) == 0o027
    finally:
        os.umask(old)


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "status.json"
    write_json_atomic(path, {"state": "running"})
    with pytest.raises(TypeError):
        write_bytes_atomic(path, "text, not bytes")          # fails inside the write, after the temp file exists
    assert path.read_text() == '{\n  "state": "running"\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
