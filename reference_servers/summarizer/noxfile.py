# /// script
# dependencies = ["nox>=2025.2.9"]
# ///
"""Checks for summarizer: `uvx nox` runs them all."""

import glob
import shutil
import tempfile

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
# A supported Python that is not installed fails its session instead of skipping it.
nox.options.error_on_missing_interpreters = True

# The MCP bundle CLI, pinned: `mcpb pack` output is what Claude Desktop installs.
MCPB = "@anthropic-ai/mcpb@2.1.2"
BUNDLE = "build/summarizer.mcpb"
EXTRAS = "openai,anthropic,otel,postgres"

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("--group", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict on src/, with every extra installed."""
    session.install("-e", f".[{EXTRAS}]", "--group", "types")
    session.run("mypy", *session.posargs)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite, on every supported Python."""
    session.install("-e", ".", "--group", "test")
    session.run("pytest", "-n", "auto", *session.posargs)


@nox.session(default=False)
def package(session: nox.Session) -> None:
    """Build and check what a release ships: dist/ (sdist, wheel) and build/*.mcpb.

    twine checks the distributions, `mcpb validate` and `mcpb pack` the bundle
    (Node.js's npx is needed), hadolint the Dockerfile. The release workflow publishes
    exactly these files; CI's `image` job builds and runs the image itself.
    """
    session.install("--group", "package")
    shutil.rmtree("dist", ignore_errors=True)
    shutil.rmtree("build", ignore_errors=True)
    session.run("uv", "build", "--out-dir", "dist", external=True)
    session.run("twine", "check", "--strict", *glob.glob("dist/*"))
    session.run("npx", "--yes", MCPB, "validate", "manifest.json", external=True)
    session.run("npx", "--yes", MCPB, "pack", ".", BUNDLE, external=True)
    session.run("hadolint", "Dockerfile")


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Build the docs site with `mkdocs build --strict`: a broken link or a warning fails.

    The site goes to a temporary folder (pass `-- --site-dir site` to keep it); the
    configuration page's tables come from the installed project's settings classes.
    """
    session.install("-e", ".", "--group", "docs")
    with tempfile.TemporaryDirectory() as site:
        session.run("mkdocs", "build", "--strict", "--site-dir", site, *session.posargs)


if __name__ == "__main__":
    nox.main()
