"""`nox -s docs`: the template's site and a generated project's, each built strictly.

1. This repository's `mkdocs.yml` and `docs/`, with `mkdocs build --strict`: a broken
   link, a missing page or image, any warning fails.
2. A project with every pattern, rendered as users get it, its site built by the
   command its README shows (`uvx nox -s docs`, run as written: its own venv, the
   build, strict). Its configuration page must name every setting of the project's
   settings classes (the page is made from them; this checks the hook ran).
3. A project with no pattern, by the same command: the pages that name patterns only
   when there are some must still link to pages that exist. (Its settings are the
   machinery's, which the first project's page names already.)

The sites are built into temporary folders, and the checkout must be as it was
before. Prints how long each build took (a project's: its `uvx nox -s docs`, install
included).

Command line (run by `nox -s docs`, in a venv holding mkdocs and copier)::

    python tests/docs_site.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from copier.errors import DirtyLocalWarning

from docs_commands import run_doc_command
from render import REPO_ROOT, SAMPLE_ANSWERS, example_choices, render

PROJECT_NAME = str(SAMPLE_ANSWERS["project_name"])
PACKAGE = PROJECT_NAME.replace("-", "_")
# mkdocs-material's notice about its successor, printed on every build.
QUIET = {"NO_MKDOCS_2_WARNING": "1", "PYTHONDONTWRITEBYTECODE": "1"}


class DocsError(Exception):
    """A site that does not build, or a build that leaves something behind."""


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env={**os.environ, **QUIET, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise DocsError(
            f"{' '.join(map(str, command))} failed in {cwd}:\n"
            f"{completed.stdout[-4000:]}{completed.stderr[-4000:]}"
        )
    return completed.stdout


def checkout_state() -> str:
    """Everything git sees in the checkout, ignored files included."""
    return run("git", "status", "--porcelain", "--ignored", cwd=REPO_ROOT)


def build_template_site(scratch: Path) -> float:
    started = time.monotonic()
    run(
        sys.executable, "-m", "mkdocs", "build", "--strict",
        "--site-dir", scratch / "template-site",
        cwd=REPO_ROOT,
    )  # fmt: skip
    return time.monotonic() - started


def build_project_site(
    scratch: Path, examples: list[str], *, read_configuration: bool
) -> float:
    """Render, then build the site with the project's own command as its README
    shows it (`uvx nox -s docs`: its venv, the build, strict); with
    `read_configuration`, once more with that venv's mkdocs into a folder kept, to
    read the configuration page. The time of the command as written."""
    project = scratch / "project"
    render(project, {**SAMPLE_ANSWERS, "examples": examples})
    started = time.monotonic()
    try:
        run_doc_command(project, "docs", timeout=600, env=QUIET)
    except RuntimeError as error:
        raise DocsError(f"{project}: {error}") from None
    seconds = time.monotonic() - started
    if not read_configuration:
        return seconds
    venv = project / ".nox" / "docs"
    site = scratch / "project-site"
    run(venv / "bin" / "mkdocs", "build", "--strict", "--site-dir", site, cwd=project)
    every_setting = (
        "import json\n"
        f"from {PACKAGE}.core._settings import env_name\n"
        f"from {PACKAGE}.server import settings_classes\n"
        "print(json.dumps([env_name(c, f) for c in settings_classes()"
        " for f in c.model_fields]))"
    )
    settings = json.loads(
        run(venv / "bin" / "python", "-c", every_setting, cwd=project)
    )
    page = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    missing = [name for name in settings if f"<code>{name}</code>" not in page]
    if missing:
        raise DocsError(f"the configuration page leaves out {missing}")
    return seconds


def main() -> int:
    # Rendering the work tree with uncommitted edits is the normal case here.
    warnings.filterwarnings("ignore", category=DirtyLocalWarning)
    before = checkout_state()
    seconds = {}
    try:
        with tempfile.TemporaryDirectory(prefix="docs-sites-") as scratch:
            seconds["template site"] = build_template_site(Path(scratch))
        for name, examples in [("every pattern", example_choices()), ("none", [])]:
            with tempfile.TemporaryDirectory(prefix="docs-sites-") as scratch:
                build = build_project_site(
                    Path(scratch), examples, read_configuration=bool(examples)
                )
                seconds[f"a project's site, patterns: {name}"] = build
    except DocsError as error:
        print(error, file=sys.stderr)
        return 1
    if (after := checkout_state()) != before:
        print(f"the docs builds left files in the checkout:\n{after}", file=sys.stderr)
        return 1
    for name, build in seconds.items():
        print(f"{name}: built in {build:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
