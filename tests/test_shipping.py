"""What a generated project ships, checked as its release workflow and hooks run.

One project with every pattern is rendered for the module. Its `nox -s package`, the
release workflow's only build step, runs here as the workflow runs it (twine, `mcpb
validate` and `pack`, hadolint), and the workflow may publish only what that session
built. Its pre-commit hooks run under prek. hadolint's control is in
test_dockerfile.py; `nox -s image` builds and runs the image itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

from project_check import mypy_cache, one_mypy_at_a_time
from render import SAMPLE_ANSWERS, example_choices, render

PROJECT_NAME = str(SAMPLE_ANSWERS["project_name"])
PACKAGE = PROJECT_NAME.replace("-", "_")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("shipping") / "project"
    render(project, {**SAMPLE_ANSWERS, "examples": example_choices()})
    return project


def uvx(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH: .ci/run installs it")
    return subprocess.run(
        [uv, "tool", "run", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def release_steps(project: Path) -> list[dict[str, object]]:
    workflow = project / ".github" / "workflows" / "release.yml"
    jobs = yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"]
    return [step for job in jobs.values() for step in job["steps"]]


def test_the_release_workflow_publishes_what_nox_package_builds_and_checks(
    project: Path,
) -> None:
    steps = release_steps(project)
    commands = [
        line.strip()
        for step in steps
        for line in str(step.get("run", "")).splitlines()
        if "nox" in line
    ]
    assert commands == ["uvx nox -s package"]

    packaged = uvx("nox", "-s", "package", cwd=project)

    assert packaged.returncode == 0, packaged.stdout[-6000:] + packaged.stderr[-6000:]
    uploaded = [
        str(step["with"]["path"])  # type: ignore[index]
        for step in steps
        if str(step.get("uses", "")).startswith("actions/upload-artifact@")
    ]
    assert uploaded == ["dist/", "build/*.mcpb"]
    # (uv build also writes dist/.gitignore; shell globs and twine leave it out.)
    assert sorted(path.name for path in (project / "dist").glob("[!.]*")) == [
        f"{PACKAGE}-0.1.0-py3-none-any.whl",
        f"{PACKAGE}-0.1.0.tar.gz",
    ]
    with zipfile.ZipFile(project / "build" / f"{PROJECT_NAME}.mcpb") as bundle:
        names = set(bundle.namelist())
        manifest = json.loads(bundle.read("manifest.json"))
    assert {"pyproject.toml", "README.md", f"src/{PACKAGE}/server.py"} <= names
    assert not [name for name in names if name.startswith(("tests/", ".nox/"))]
    assert manifest["version"] == "0.1.0"


def test_the_pre_commit_hooks_pass_and_catch_a_type_error(
    project: Path, tmp_path: Path
) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(project, checkout, ignore=shutil.ignore_patterns(".nox", "dist"))
    subprocess.run(["git", "init", "-q"], cwd=checkout, check=True)
    subprocess.run(["git", "add", "-A"], cwd=checkout, check=True)

    # The mypy hook on the project checks' cache (FastMCP's and pydantic's types
    # are known there already), holding it as they do.
    shared = {"MYPY_CACHE_DIR": str(mypy_cache())}
    with one_mypy_at_a_time():
        clean = uvx("prek", "run", "--all-files", cwd=checkout, env=shared)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert [line.split(".")[0] for line in clean.stdout.splitlines()] == [
        "ruff check",
        "ruff format",
        "mypy --strict (src/)",
    ]

    helpers = checkout / "src" / PACKAGE / "helpers.py"
    helpers.write_text("def shout(text):\n    return text.upper()\n")
    subprocess.run(["git", "add", "-A"], cwd=checkout, check=True)
    with one_mypy_at_a_time():
        caught = uvx("prek", "run", "--all-files", cwd=checkout, env=shared)
    assert caught.returncode == 1
    assert "Function is missing a type annotation" in caught.stdout
