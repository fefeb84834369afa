"""The generated Dockerfile as text: hadolint-clean (with a control), the Registry's
label, a pinned base, and the install from uv.lock in two layers.

`nox -s image` builds and runs it for real, with podman (tests/image/).
"""

from __future__ import annotations

import doctest
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from image import engine
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


def test_the_image_installs_what_uv_lock_pins_the_dependencies_first(
    project: Path,
) -> None:
    """uv's Docker guide: the locked dependencies in a layer of their own, made from
    pyproject.toml and uv.lock alone, so an edit of src/ reuses it; then the project.
    Every extra the project declares is in the image."""
    dockerfile = (project / "Dockerfile").read_text()
    build_stage = dockerfile.split("\nFROM ")[1]
    steps = re.findall(r"(?m)^(COPY|RUN) ((?:.*\\\n)*.*)", build_stage)
    copies_and_syncs = [
        (keyword, " ".join(text.replace("\\\n", " ").split()))
        for keyword, text in steps
        if keyword == "COPY" or "uv sync" in text
    ]
    pyproject = (project / "pyproject.toml").read_text()
    table = pyproject.split("\n[project.optional-dependencies]\n")[1].split("\n[")[0]
    extras = " ".join(
        f"--extra {extra}" for extra in re.findall(r"(?m)^([a-z0-9-]+) = ", table)
    )

    assert copies_and_syncs[1:] == [
        ("COPY", "pyproject.toml uv.lock ./"),
        ("RUN", f"uv sync --locked --no-install-project --no-dev {extras}"),
        ("COPY", "README.md LICENSE ./"),
        ("COPY", "src ./src"),
        ("RUN", f"uv sync --locked --no-dev --no-editable {extras}"),
    ]
    assert "uv.lock" not in (project / ".dockerignore").read_text().split()


def test_nox_image_has_a_stand_in_for_every_image_the_dockerfile_needs(
    project: Path,
) -> None:
    """`nox -s image` builds on local stand-ins (tests/image/engine.py): a base image
    it cannot stand in for fails here first, in the tests session."""
    failed, tried = doctest.testmod(engine)
    assert (failed, tried > 0) == (0, True)

    images = engine.base_images(project / "Dockerfile")

    assert len(images) == 2
    assert [
        bool(engine.PYTHON_IMAGE.fullmatch(image) or engine.UV_IMAGE.fullmatch(image))
        for image in images
    ] == [True, True], images
