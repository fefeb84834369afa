"""The checker used on generated projects and reference servers, on a tiny project."""

from __future__ import annotations

from pathlib import Path

import pytest

from project_check import ProjectCheckError, check_project

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "tiny"
version = "0"

[dependency-groups]
dev = ["mypy", "pytest", "pytest-xdist", "ruff"]

[tool.mypy]
strict = true
files = ["src"]

[tool.pytest.ini_options]
addopts = ["--doctest-modules"]
markers = ["process: starts a subprocess"]
"""

PASSING_TEST = "def test_passes():\n    assert 1 + 1 == 2\n"


def make_project(root: Path, test_source: str, module_source: str = "") -> Path:
    (root / "src" / "tiny").mkdir(parents=True)
    (root / "src" / "tiny" / "__init__.py").write_text(module_source)
    (root / "tests").mkdir()
    (root / "tests" / "test_tiny.py").write_text(test_source)
    (root / "pyproject.toml").write_text(PYPROJECT)
    return root


def all_paths(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def test_passing_project_passes_and_is_left_untouched(tmp_path: Path) -> None:
    project = make_project(tmp_path, PASSING_TEST)
    before = all_paths(project)

    check_project(project)

    assert all_paths(project) == before  # no venv, lock file, caches or bytecode


@pytest.mark.parametrize(
    ("test_source", "module_source", "failing_step"),
    [
        ("def test_fails():\n    assert 1 + 1 == 3\n", "", "pytest failed"),
        ("def test_passes():\n    assert 1+1 == 2\n", "", "ruff format --check failed"),
        ("import os\n\n\n" + PASSING_TEST, "", "ruff check failed"),
        (PASSING_TEST, "def untyped(x):\n    return x\n", "mypy failed"),
    ],
    ids=["failing-test", "unformatted", "lint-error", "untyped"],
)
def test_failing_step_is_named(
    tmp_path: Path, test_source: str, module_source: str, failing_step: str
) -> None:
    project = make_project(tmp_path, test_source, module_source)
    with pytest.raises(ProjectCheckError, match=failing_step):
        check_project(project)


def test_a_marker_expression_picks_the_tests(tmp_path: Path) -> None:
    failing_process_test = (
        "import pytest\n\n\n"
        "@pytest.mark.process\n"
        "def test_starts_a_server():\n"
        "    assert False\n\n\n" + PASSING_TEST
    )
    project = make_project(tmp_path, failing_process_test)
    check_project(project, tests="not process")
    for picked in ["process", None]:
        with pytest.raises(ProjectCheckError, match="pytest failed"):
            check_project(project, tests=picked)


def test_without_machinery_leaves_out_the_machinerys_tests_and_doctests(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    project = make_project(tmp_path, PASSING_TEST)
    (project / "tests" / "core").mkdir()
    (project / "tests" / "core" / "test_machinery.py").write_text(
        "def test_machinery():\n    assert False\n"
    )
    (project / "src" / "tiny" / "core").mkdir()
    (project / "src" / "tiny" / "core" / "__init__.py").write_text(
        'def two() -> int:\n    """\n    >>> two()\n    3\n    """\n    return 2\n'
    )
    check_project(project, machinery=False)
    capfd.readouterr()
    with pytest.raises(ProjectCheckError, match="pytest failed"):
        check_project(project)
    report = capfd.readouterr().out
    assert "FAILED tests/core/test_machinery.py::test_machinery" in report
    assert "FAILED src/tiny/core/__init__.py::tiny.core.two" in report


def test_files_left_in_the_project_are_an_error(tmp_path: Path) -> None:
    leaves_a_file = (
        "from pathlib import Path\n\n\n"
        "def test_writes():\n"
        '    Path("leftover.txt").write_text("x")\n'
    )
    project = make_project(tmp_path, leaves_a_file)
    with pytest.raises(ProjectCheckError, match=r"left files behind:\s+leftover\.txt"):
        check_project(project)
