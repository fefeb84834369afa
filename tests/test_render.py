"""The render helper (render.py) reads git's core.fileMode once per render, and keeps
copier's per-file step where that setting makes it do something."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from copier import _main as copier_internals

from render import _file_mode_read_once

STEP = "_sync_git_index_executable_bit"


@pytest.mark.parametrize(("file_mode", "kept"), [("true", False), ("false", True)])
def test_copiers_per_file_git_step_is_kept_only_where_it_mends_the_index(
    tmp_path: Path, file_mode: str, kept: bool
) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "config", "core.fileMode", file_mode], check=True
    )
    copiers_own = getattr(copier_internals.Worker, STEP)

    with _file_mode_read_once(tmp_path / "project"):
        during = getattr(copier_internals.Worker, STEP)

    assert (during is copiers_own) is kept
    assert getattr(copier_internals.Worker, STEP) is copiers_own
