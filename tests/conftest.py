from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

# Commits made by the tests themselves: fixed identity, and no user or system git
# config (signing, hooks, templates) leaking in.
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The generated projects' whole checks take longest: first, so that under xdist
    # (`nox -s tests`: a test file per worker at a time) the other files fill the other
    # workers meanwhile, instead of leaving them idle at the end.
    items.sort(key=lambda item: item.path.name != "test_generation.py")


def pytest_configure(config: pytest.Config) -> None:
    # Rendering from a work tree with uncommitted template edits is the normal case
    # while developing; copier warns about it on every render.
    config.addinivalue_line("filterwarnings", "ignore::copier.errors.DirtyLocalWarning")


@pytest.fixture
def git() -> Callable[..., str]:
    """Run git in a directory and return its output; fail the test on error."""

    def run(cwd: Path, *args: str) -> str:
        completed = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=GIT_ENV,
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            pytest.fail(f"git {' '.join(args)} failed in {cwd}:\n{completed.stderr}")
        return completed.stdout

    return run
