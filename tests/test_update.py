"""`copier update` brings template changes into a project and keeps the user's edits,
as the README's commands and the generated template-update workflow run it."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import copier
import yaml

from render import REPO_ROOT, SAMPLE_ANSWERS, render

USER_EDIT = "# Added by the project's owner after generation.\n"
TEMPLATE_CHANGE = "# Added to the template in v0.2.0.\n"
CONFLICTING_EDIT = "# The owner's own last line, where v0.2.0 adds one.\n"


def tagged_template(where: Path, git: Callable[..., str]) -> Path:
    """A throwaway template repository tagged v0.1.0, so a test can release it."""
    where.mkdir()
    shutil.copy2(REPO_ROOT / "copier.yml", where / "copier.yml")
    shutil.copytree(REPO_ROOT / "template", where / "template")
    git(where, "init", "--quiet", "--initial-branch=main")
    git(where, "add", "--all")
    git(where, "commit", "--quiet", "--message=v0.1.0")
    git(where, "tag", "v0.1.0")
    return where


def generated_project(where: Path, template: Path, git: Callable[..., str]) -> Path:
    """A project generated from the template's v0.1.0 and committed, as the README
    tells users to."""
    render(where, SAMPLE_ANSWERS, template=template, vcs_ref="v0.1.0")
    git(where, "init", "--quiet", "--initial-branch=main")
    git(where, "add", "--all")
    git(where, "commit", "--quiet", "--message=Generate from v0.1.0")
    return where


def release_v0_2_0(template: Path, git: Callable[..., str]) -> None:
    """The template changes a file no user edits, and tags v0.2.0."""
    [template_init] = (template / "template" / "src" / "{{ package_name }}").glob(
        "__init__.py*"
    )
    with template_init.open("a", encoding="utf-8") as file:
        file.write(TEMPLATE_CHANGE)
    git(template, "commit", "--quiet", "--all", "--message=v0.2.0")
    git(template, "tag", "v0.2.0")


def test_update_keeps_user_edits_and_applies_template_changes(
    tmp_path: Path, git: Callable[..., str]
) -> None:
    template = tagged_template(tmp_path / "template-repo", git)
    project = generated_project(tmp_path / "project", template, git)

    package_name = str(SAMPLE_ANSWERS["project_name"]).replace("-", "_")
    package = project / "src" / package_name
    user_edited = package / "server.py"
    with user_edited.open("a", encoding="utf-8") as file:
        file.write(USER_EDIT)
    git(project, "commit", "--quiet", "--all", "--message=User edit")

    release_v0_2_0(template, git)

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


def test_a_project_follows_its_template_to_a_new_location(
    tmp_path: Path, git: Callable[..., str]
) -> None:
    """The README's recipe for a moved template, command for command."""
    old_home = tagged_template(tmp_path / "old-home", git)
    project = generated_project(tmp_path / "project", old_home, git)
    new_home = old_home.rename(tmp_path / "new-home")
    release_v0_2_0(new_home, git)

    copier.run_copy(
        str(new_home),
        str(project),
        vcs_ref="v0.1.0",
        defaults=True,
        overwrite=True,
        exclude=["*", "!.copier-answers.yml"],
        unsafe=False,
        quiet=True,
    )
    assert git(project, "status", "--porcelain").split() == ["M", ".copier-answers.yml"]
    git(project, "commit", "--quiet", "--all", "--message=Template moved")
    copier.run_update(
        str(project), defaults=True, overwrite=True, unsafe=False, quiet=True
    )

    answers = (project / ".copier-answers.yml").read_text()
    assert f"_src_path: {new_home}" in answers
    assert "_commit: v0.2.0" in answers
    package = str(SAMPLE_ANSWERS["project_name"]).replace("-", "_")
    init = project / "src" / package / "__init__.py"
    assert init.read_text(encoding="utf-8").endswith(TEMPLATE_CHANGE)


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def test_the_update_workflow_runs_copier_update_and_leaves_conflicts_marked(
    tmp_path: Path, git: Callable[..., str]
) -> None:
    """template-update.yml's `copier update` step, run here exactly as written, on a
    project whose owner changed a line the next template release changes too."""
    template = tagged_template(tmp_path / "template-repo", git)
    project = generated_project(tmp_path / "project", template, git)
    package = project / "src" / str(SAMPLE_ANSWERS["project_name"]).replace("-", "_")
    with (package / "server.py").open("a", encoding="utf-8") as file:
        file.write(USER_EDIT)
    with (package / "__init__.py").open("a", encoding="utf-8") as file:
        file.write(CONFLICTING_EDIT)
    git(project, "commit", "--quiet", "--all", "--message=User edits")
    release_v0_2_0(template, git)

    workflow = yaml.safe_load(
        (project / ".github" / "workflows" / "template-update.yml").read_text()
    )
    # Weekly and on demand, allowed to push a branch and open a pull request only.
    assert set(workflow[True]) == {"schedule", "workflow_dispatch"}  # YAML 1.1: on
    assert workflow["permissions"] == {"contents": "write", "pull-requests": "write"}
    steps = workflow["jobs"]["update"]["steps"]
    [update] = [step for step in steps if "copier update" in step.get("run", "")]
    # The copier the template is tested with (noxfile.py's COPIER), no --trust.
    assert f"--from '{noxfile_copier()}' copier update" in update["run"]
    assert "--trust" not in update["run"]
    after = steps[steps.index(update) + 1 :]
    assert [step["uses"].split("@")[0] for step in after] == [
        "peter-evans/create-pull-request"
    ]

    updated = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", update["run"]],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert updated.returncode == 0, updated.stderr
    assert "_commit: v0.2.0" in (project / ".copier-answers.yml").read_text()
    assert (package / "server.py").read_text(encoding="utf-8").endswith(USER_EDIT)
    init = (package / "__init__.py").read_text(encoding="utf-8")
    assert re.search(
        r"<<<<<<< .*\n"
        + re.escape(CONFLICTING_EDIT)
        + r"=======\n"
        + re.escape(TEMPLATE_CHANGE)
        + r">>>>>>> .*\n",
        init,
    ), init[-600:]
    assert not list(project.rglob("*.rej"))


def noxfile_copier() -> str:
    """The copier requirement the template's own sessions install."""
    noxfile = (REPO_ROOT / "noxfile.py").read_text(encoding="utf-8")
    match = re.search(r'(?m)^COPIER = "([^"]+)"$', noxfile)
    assert match, "noxfile.py names no COPIER"
    return match.group(1)
