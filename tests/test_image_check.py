"""The generated Dockerfile: hadolint-clean, and its own commands install and serve.

No container engine runs here: the generated tests/image_check.py plays the
Dockerfile's build and start commands in a throwaway directory standing for `/app`
and talks MCP to the server they start (as the generated `nox -s package` does).
Each check has a control: a realistic break that it must report.

One project (the summarizer alone, to keep the install small) serves the module.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from render import SAMPLE_ANSWERS, render
from session_tools import session_tool

PROJECT_NAME = str(SAMPLE_ANSWERS["project_name"])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("image") / "project"
    render(project, {**SAMPLE_ANSWERS, "examples": ["summarizer"]})
    return project


@pytest.fixture
def broken(project: Path, tmp_path: Path) -> Path:
    """A copy of the project, whose Dockerfile a test may break."""
    copy = tmp_path / "project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".nox", "dist"))
    return copy


def run_hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    hadolint = session_tool("hadolint")
    return subprocess.run(
        [hadolint, "--no-color", str(dockerfile)],
        cwd=dockerfile.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_image_check(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "tests/image_check.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_dockerfile_is_hadolint_clean(project: Path) -> None:
    linted = run_hadolint(project / "Dockerfile")

    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_hadolint_reports_an_untagged_base_image(broken: Path) -> None:
    """Control: hadolint does read the file and does fail on a real problem."""
    dockerfile = broken / "Dockerfile"
    text = dockerfile.read_text()
    dockerfile.write_text(re.sub(r"(?m)^FROM \S+", "FROM python", text))

    linted = run_hadolint(dockerfile)

    assert linted.returncode == 1
    assert "DL3006" in linted.stdout


def test_the_image_carries_the_registry_name_and_runs_as_non_root(
    project: Path,
) -> None:
    dockerfile = (project / "Dockerfile").read_text()
    server_json = json.loads((project / "server.json").read_text())

    assert f'io.modelcontextprotocol.server.name="{server_json["name"]}"' in dockerfile
    assert re.search(r"(?m)^USER 10001(:10001)?$", dockerfile)
    assert "MCP_HOST=0.0.0.0" in dockerfile
    # Tags pinned: the uv image to a release, the base image to a Python minor.
    assert re.search(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+ ", dockerfile)
    bases = re.findall(r"(?m)^FROM (\S+)", dockerfile)
    assert len(bases) == 2
    assert len(set(bases)) == 1, "the venv needs the same base in both stages"
    assert re.fullmatch(r"python:3\.\d+-slim-\w+", bases[0])


def test_the_image_check_installs_starts_and_talks_to_the_server(
    project: Path,
) -> None:
    checked = run_image_check(project)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "refuses to start" in checked.stdout
    assert "HEALTHCHECK passed" in checked.stdout
    assert "1 tools (summarize); 401 without the token" in checked.stdout
    assert checked.stdout.strip().splitlines()[-1] == "image-check: ok"


def test_the_image_check_fails_in_one_line_when_the_venv_is_left_behind(
    broken: Path,
) -> None:
    """Control: a final stage that forgets the build's venv cannot start the server."""
    dockerfile = broken / "Dockerfile"
    text = dockerfile.read_text()
    assert "COPY --from=build /app/.venv /app/.venv\n" in text
    dockerfile.write_text(text.replace("COPY --from=build /app/.venv /app/.venv\n", ""))

    checked = run_image_check(broken)

    assert checked.returncode == 1
    assert checked.stderr.strip().splitlines()[-1] == (
        f"image-check: ENTRYPOINT {PROJECT_NAME}: the build installed no such command"
    )
    assert "Traceback" not in checked.stderr


def test_the_image_check_refuses_an_image_that_runs_as_root(broken: Path) -> None:
    """Control: checked before any build, so it costs nothing."""
    dockerfile = broken / "Dockerfile"
    dockerfile.write_text(re.sub(r"(?m)^USER .*\n", "", dockerfile.read_text()))

    checked = run_image_check(broken)

    assert checked.returncode == 1
    assert checked.stderr.strip() == (
        "image-check: the final stage runs as root: give it a USER"
    )
