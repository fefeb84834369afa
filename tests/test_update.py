"""`copier update` brings template changes into a project and keeps the user's edits."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import copier

from render import REPO_ROOT, SAMPLE_ANSWERS, render

USER_EDIT = "# Added by the project's owner after generation.\n"
TEMPLATE_CHANGE = "# Added to the template in v0.2.0.\n"


def test_update_keeps_user_edits_and_applies_template_changes(
    tmp_path: Path, git: Callable[..., str]
) -> None:
    # A throwaway template repository, so the test can tag releases of it.
    template = tmp_path / "template-repo"
    template.mkdir()
    shutil.copy2(REPO_ROOT / "copier.yml", template / "copier.yml")
    shutil.copytree(REPO_ROOT / "template", template / "template")
    git(template, "init", "--quiet", "--initial-branch=main")
    git(template, "add", "--all")
    git(template, "commit", "--quiet", "--message=v0.1.0")
    git(template, "tag", "v0.1.0")

    project = tmp_path / "project"
    render(project, SAMPLE_ANSWERS, template=template, vcs_ref="v0.1.0")
    git(project, "init", "--quiet", "--initial-branch=main")
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--message=Generate from v0.1.0")

    package_name = str(SAMPLE_ANSWERS["project_name"]).replace("-", "_")
    package = project / "src" / package_name
    user_edited = package / "server.py"
    with user_edited.open("a", encoding="utf-8") as file:
        file.write(USER_EDIT)
    git(project, "commit", "--quiet", "--all", "--message=User edit")

    # The template changes a file the user did not touch.
    [template_init] = (template / "template" / "src" / "{{ package_name }}").glob(
        "__init__.py*"
    )
    with template_init.open("a", encoding="utf-8") as file:
        file.write(TEMPLATE_CHANGE)
    git(template, "commit", "--quiet", "--all", "--message=v0.2.0")
    git(template, "tag", "v0.2.0")

    copier.run_update(
        str(project),
        defaults=True,
        overwrite=True,
        vcs_ref="v0.2.0",
        unsafe=False,
        quiet=True,
    )

    assert user_edited.read_text(encoding="utf-8").endswith(USER_EDIT)
    assert (
        (package / "__init__.py").read_text(encoding="utf-8").endswith(TEMPLATE_CHANGE)
    )
    assert "_commit: v0.2.0" in (project / ".copier-answers.yml").read_text()
    assert not list(project.rglob("*.rej"))
    conflicted = [
        path
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.parts and "<<<<<<<" in _text(path)
    ]
    assert not conflicted


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")
