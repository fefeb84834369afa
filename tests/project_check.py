"""Check a generated project the way its own CI would: its ruff, its mypy, its tests.

Used by the template's tests (every rendered combination) and by ``nox -s reference``
(every committed reference server), so both run exactly the same checks.

The project is installed (editable, with its ``dev`` dependency group) into a
throwaway virtual environment outside the project, and every tool is told not to
write caches or bytecode, so the project tree is left exactly as it was. The check
verifies that too: reference servers live in this repository, and a stray
``.venv``/``uv.lock``/cache there would show up as drift.

Only the standard library and ``uv`` (on PATH) are needed.

Command line: ``python tests/project_check.py [--in-process] PROJECT_DIR [...]``;
``--in-process`` leaves out the tests marked ``process`` (those that start the server
as a subprocess).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


class ProjectCheckError(Exception):
    """A generated project failed one of its own checks (or dirtied its tree)."""


def check_project(
    project: Path, python: str | None = None, *, in_process_only: bool = False
) -> None:
    """Install ``project`` into a throwaway venv and run ruff, mypy and pytest on it.

    ``python`` is anything ``uv venv --python`` accepts; by default the interpreter
    running this function. The tests run on every core (pytest-xdist); with
    ``in_process_only``, without those marked ``process``. Raises ProjectCheckError
    naming the step that failed.
    """
    project = project.resolve()
    uv = shutil.which("uv")
    if uv is None:
        raise ProjectCheckError("uv is not on PATH; install it with `pip install uv`")
    files_before = _all_paths(project)

    with tempfile.TemporaryDirectory(prefix="mcp-project-check-") as scratch:
        venv = Path(scratch) / "venv"
        bin_dir = venv / "bin"
        _run(
            "create venv",
            [uv, "venv", "--quiet", "--python", python or sys.executable, str(venv)],
            cwd=scratch,
        )
        _run(
            "install project with its dev group",
            [
                uv, "pip", "install", "--quiet",
                "--python", str(bin_dir / "python"),
                "--editable", str(project),
                "--group", f"{project / 'pyproject.toml'}:dev",
            ],
            cwd=scratch,
        )  # fmt: skip

        env = _isolated_env(venv, bin_dir, scratch=Path(scratch))
        pytest = ["-n", "auto", *(["-m", "not process"] if in_process_only else [])]
        for step, command in [
            ("ruff check", ["ruff", "check", "--no-cache", "."]),
            ("ruff format --check", ["ruff", "format", "--check", "--no-cache", "."]),
            ("mypy", ["mypy"]),  # strict, on the files its [tool.mypy] names
            ("pytest", ["python", "-m", "pytest", "-p", "no:cacheprovider", *pytest]),
        ]:
            executable = shutil.which(command[0], path=str(bin_dir))
            if executable is None:
                raise ProjectCheckError(
                    f"{project}: {command[0]} is not installed by the dev group"
                )
            _run(step, [executable, *command[1:]], cwd=project, env=env)

    new_paths = sorted(_all_paths(project) - files_before)
    if new_paths:
        listing = "\n  ".join(str(path) for path in new_paths)
        raise ProjectCheckError(f"checking {project} left files behind:\n  {listing}")


def _isolated_env(venv: Path, bin_dir: Path, scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The caller may itself run inside a venv (a nox session); the project's tools
    # must see only the throwaway one.
    env.pop("PYTHONPATH", None)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    # Keep the project tree clean: no __pycache__, no ruff cache, and Hypothesis's
    # example database (which otherwise appears as ./.hypothesis) goes to scratch.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["RUFF_NO_CACHE"] = "true"
    env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(scratch / "hypothesis")
    env["MYPY_CACHE_DIR"] = str(scratch / "mypy")
    return env


def _run(
    step: str, command: list[str], cwd: Path | str, env: dict[str, str] | None = None
) -> None:
    print(f"[{step}] {' '.join(command)}", flush=True)
    completed = subprocess.run(command, cwd=cwd, env=env, check=False)
    if completed.returncode != 0:
        raise ProjectCheckError(
            f"{step} failed (exit {completed.returncode}) in {cwd}: {' '.join(command)}"
        )


def _all_paths(root: Path) -> set[Path]:
    return {path.relative_to(root) for path in root.rglob("*")}


def main(argv: list[str]) -> int:
    in_process_only = "--in-process" in argv
    projects = [arg for arg in argv if arg != "--in-process"]
    if not projects:
        print(__doc__, file=sys.stderr)
        return 2
    failures = []
    for project in projects:
        try:
            check_project(Path(project), in_process_only=in_process_only)
        except ProjectCheckError as error:
            failures.append(str(error))
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
