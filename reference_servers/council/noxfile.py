# /// script
# dependencies = ["nox>=2025.2.9"]
# ///
"""Checks for council: `uvx nox` runs them all."""

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
# A supported Python that is not installed fails its session instead of skipping it.
nox.options.error_on_missing_interpreters = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("--group", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite, on every supported Python."""
    session.install("-e", ".", "--group", "test")
    session.run("pytest", "-n", "auto", *session.posargs)


@nox.session(default=False)
def scale(session: nox.Session) -> None:
    """Three replicas sharing PostgreSQL behind HAProxy, with deploy/haproxy.cfg.

    Needs PostgreSQL and HAProxy installed (Debian: `apt-get install postgresql
    haproxy`); the default `tests` run the same suite on one replica with SQLite.
    """
    session.install("-e", ".[postgres]", "--group", "test")
    session.run(
        "pytest",
        "tests/patterns/test_council_replicas.py",
        *session.posargs,
        env={"COUNCIL_TEST_DEPLOYMENT": "replicas"},
    )


if __name__ == "__main__":
    nox.main()
