"""Finding the command-line tools the nox `tests` session installs (actionlint,
hadolint) and the Pythons the generated projects are tested on."""

from __future__ import annotations

import os
import shutil
import subprocess
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


def find_python(version: str) -> str:
    """The path of an installed Python ``version``, or fail the test saying why.

    Not a skip: the minimum Python is a promise the template makes, so a machine
    that cannot test it must say so loudly.
    """
    found = subprocess.run(
        ["uv", "python", "find", "--no-project", version],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        pytest.fail(
            f"Python {version} not found, so the generated project cannot be tested "
            f"on its minimum Python. Put a python{version} on PATH (.ci/run adds "
            f"every pyenv version) or `uv python install {version}`.\n{found.stderr}"
        )
    return found.stdout.strip()
