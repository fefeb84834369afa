"""Finding the command-line tools the nox `tests` session installs (actionlint, hadolint)."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest


def session_tool(name: str) -> str:
    """The path of ``name``, installed by the nox session next to the interpreter
    running the tests (else found on PATH), or fail the test saying how to get it."""
    scripts = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    tool = shutil.which(name, path=os.pathsep.join(scripts)) or shutil.which(name)
    if tool is None:
        pytest.fail(f"{name} not found: run the tests with `nox -s tests`")
    return tool
