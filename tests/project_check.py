"""Check a generated project the way its own CI would: its ruff, its mypy, its tests.

Used by the template's tests (every rendered combination) and by ``nox -s reference``
(every committed reference server), so both run exactly the same checks.

The project is installed (editable, with its ``dev`` dependency group) into a
throwaway virtual environment outside the project, and every tool is told not to
write caches or bytecode, so the project tree is left exactly as it was. The check
verifies that too: reference servers live in this repository, and a stray
``.venv``/``uv.lock``/cache there would show up as drift.

Only the standard library and ``uv`` (on PATH) are needed.

The template's machinery (``tests/core``, and ``src/<package>/core`` with its doctests)
is the same in every generated project, so its tests need to run once, in the
all-pattern project (``nox -s tests``); ``machinery=False`` leaves them out, and keeps
the project's own: its patterns' tests and those of the files it ships (``server.json``,
``manifest.json``, ...), which differ from one selection of patterns to another.

mypy's cache is shared by every project checked (mypy knows a file by its hash, so
another project's copy of FastMCP or pydantic is no stranger to it): the folder
``MYPY_CACHE_DIR`` names (the nox sessions name one under ``.nox/``), one mypy at a
time across processes (``one_mypy_at_a_time``), or else a scratch folder of this
process. The bytecode is shared by the projects this process checks (the standard
library's is the same for all), in a scratch folder removed at exit.

Command line: ``python tests/project_check.py [--in-process] [--no-machinery]
PROJECT_DIR [...]``; ``--in-process`` leaves out the tests marked ``process`` (those
that start the server as a subprocess), ``--no-machinery`` the machinery's.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MACHINERY = ["tests/core", "src/*/core"]
"""Where the machinery and its tests live in a generated project (globs)."""


class ProjectCheckError(Exception):
    """A generated project failed one of its own checks (or dirtied its tree)."""


def check_project(
    project: Path,
    python: str | None = None,
    *,
    tests: str | None = None,
    machinery: bool = True,
) -> None:
    """Install ``project`` into a throwaway venv and run ruff, mypy and pytest on it.

    ``python`` is anything ``uv venv --python`` accepts; by default the interpreter
    running this function. The tests run on every core (pytest-xdist); ``tests`` is a
    marker expression that picks some (``"not process"``: those that run in-process);
    without ``machinery``, without the machinery's (``MACHINERY``), in one process.
    Raises ProjectCheckError naming the step that failed.
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
        pytest = ["-m", tests] if tests else []
        if machinery:
            pytest += ["-n", "auto"]
        else:
            # A few dozen tests: one process, as pytest-xdist's start (a controller
            # and a worker per core, each importing FastMCP) would cost more.
            pytest += ["-n", "0"]
            pytest += [
                f"--ignore={path.relative_to(project)}"
                for pattern in MACHINERY
                for path in sorted(project.glob(pattern))
            ]
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
            with one_mypy_at_a_time() if step == "mypy" else contextlib.nullcontext():
                _run(step, [executable, *command[1:]], cwd=project, env=env)

    new_paths = sorted(_all_paths(project) - files_before)
    if new_paths:
        listing = "\n  ".join(str(path) for path in new_paths)
        raise ProjectCheckError(f"checking {project} left files behind:\n  {listing}")


def mypy_cache() -> Path:
    """The mypy cache every project check uses (see the module's docstring)."""
    named = os.environ.get("MYPY_CACHE_DIR")
    return Path(named) if named else _shared_scratch() / "mypy"


@contextlib.contextmanager
def one_mypy_at_a_time() -> Iterator[None]:
    """Hold the shared mypy cache: mypy keeps it in SQLite and expects no second run
    on it. A lock on a file, so that it holds across processes (pytest's workers, the
    nox sessions) and across the threads of one."""
    cache = mypy_cache()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _isolated_env(venv: Path, bin_dir: Path, scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The caller may itself run inside a venv (a nox session); the project's tools
    # must see only the throwaway one.
    env.pop("PYTHONPATH", None)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    # Keep the project tree clean: bytecode (written once, read by every process of
    # the run: pytest's workers, the servers the tests start) and Hypothesis's example
    # database (which otherwise appears as ./.hypothesis) go to scratch; no ruff cache.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(_shared_scratch() / "pycache")
    env["RUFF_NO_CACHE"] = "true"
    env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(scratch / "hypothesis")
    env["MYPY_CACHE_DIR"] = str(mypy_cache())
    return env


@functools.cache
def _shared_scratch() -> Path:
    """A scratch folder for every project this process checks, removed at exit."""
    scratch = Path(tempfile.mkdtemp(prefix="mcp-project-check-shared-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return scratch


def _run(
    step: str, command: list[str], cwd: Path | str, env: dict[str, str] | None = None
) -> None:
    """Run one step; its command and output are printed in one piece when it ends, so
    that projects checked side by side (`main`) do not mix their lines."""
    completed = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    print(f"[{step} in {cwd}] {' '.join(command)}\n{completed.stdout}", end="")
    sys.stdout.flush()
    if completed.returncode != 0:
        raise ProjectCheckError(
            f"{step} failed (exit {completed.returncode}) in {cwd}: {' '.join(command)}"
        )


def _all_paths(root: Path) -> set[Path]:
    return {path.relative_to(root) for path in root.rglob("*")}


PROJECTS_AT_ONCE = 4
"""Projects `main` checks side by side: each waits on its install, its turn at mypy and
its processes' start-up, so four (the reference servers) keep two cores busy."""


def main(argv: list[str]) -> int:
    options = {"--in-process", "--no-machinery"}
    projects = [Path(arg) for arg in argv if arg not in options]
    if not projects:
        print(__doc__, file=sys.stderr)
        return 2

    def failure(project: Path) -> str | None:
        try:
            check_project(
                project,
                tests="not process" if "--in-process" in argv else None,
                machinery="--no-machinery" not in argv,
            )
        except ProjectCheckError as error:
            return str(error)
        return None

    _shared_scratch()  # made before the threads share it
    with ThreadPoolExecutor(PROJECTS_AT_ONCE) as pool:
        failures = [problem for problem in pool.map(failure, projects) if problem]
    for problem in failures:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
