"""The drift check and regeneration of reference servers, on a copy of this repository.

Never on the real tree: each test gets a fresh git repository holding copier.yml,
template/ and one reference server ("demo") regenerated and committed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import references
from references import (
    ANSWERS_FILE,
    Drift,
    find_drift,
    regenerate,
    render_reference,
    visible_files,
)
from render import REPO_ROOT, SAMPLE_ANSWERS

NOT_FROM_TEMPLATE = "notes.txt"
IGNORED = "__pycache__/stale.cpython-311.pyc"


@pytest.fixture
def repo(tmp_path: Path, git: Callable[..., str]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ["copier.yml", ".gitignore"]:
        shutil.copy2(REPO_ROOT / name, repo / name)
    shutil.copytree(
        REPO_ROOT / "template",
        repo / "template",
        ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"),
    )
    answers = {"_src_path": "../..", **SAMPLE_ANSWERS, "examples": ["summarizer"]}
    demo = reference(repo)
    demo.mkdir(parents=True)
    (demo / ANSWERS_FILE).write_text(yaml.safe_dump(answers), encoding="utf-8")
    git(repo, "init", "--quiet", "--initial-branch=main")
    regenerate("demo", repo)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--message=Template and reference server")
    return repo


def reference(repo: Path) -> Path:
    return repo / "reference_servers" / "demo"


def inject_local_changes(repo: Path) -> Drift:
    """Edit, delete and add a file in the reference; return the drift that makes."""
    demo = reference(repo)
    # Not dotfiles: editing the reference's own .gitignore would change what git sees.
    edited, deleted = sorted(
        path for path in visible_files(demo) if not path.startswith(".")
    )[:2]
    with (demo / edited).open("a", encoding="utf-8") as file:
        file.write("# edited by hand\n")
    (demo / deleted).unlink()
    (demo / NOT_FROM_TEMPLATE).write_text("not rendered by the template\n")
    (demo / IGNORED).parent.mkdir(exist_ok=True)
    (demo / IGNORED).write_bytes(b"ignored by .gitignore, so never drift\n")
    return Drift(
        would_add=[deleted], would_change=[edited], would_delete=[NOT_FROM_TEMPLATE]
    )


def test_regenerated_reference_has_no_drift_and_a_portable_answers_file(
    repo: Path,
) -> None:
    assert find_drift("demo", repo) == Drift()

    answers = (reference(repo) / ANSWERS_FILE).read_text(encoding="utf-8")
    assert "_src_path: ../..\n" in answers
    assert "_commit" not in answers


def test_drift_names_each_added_changed_and_deleted_file(repo: Path) -> None:
    expected = inject_local_changes(repo)

    drift = find_drift("demo", repo)

    assert drift == expected
    report = drift.report("reference_servers/demo")
    for verb, path in [
        ("add", expected.would_add[0]),
        ("change", expected.would_change[0]),
        ("delete", NOT_FROM_TEMPLATE),
    ]:
        assert f"{verb} reference_servers/demo/{path}" in " ".join(report.split())


def test_drift_command_fails_and_lists_the_differences(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert references.main(["drift"], repo_root=repo) == 0

    expected = inject_local_changes(repo)

    assert references.main(["drift"], repo_root=repo) == 1
    errors = capsys.readouterr().err
    for path in expected.would_add + expected.would_change + expected.would_delete:
        assert f"reference_servers/demo/{path}" in errors


def test_regenerate_undoes_local_changes_but_keeps_ignored_files(repo: Path) -> None:
    expected = inject_local_changes(repo)

    assert regenerate("demo", repo) == expected

    assert find_drift("demo", repo) == Drift()
    assert not (reference(repo) / NOT_FROM_TEMPLATE).exists()
    assert (reference(repo) / IGNORED).is_file()


def test_render_is_byte_identical_across_commits_and_checkout_paths(
    repo: Path, tmp_path: Path, git: Callable[..., str]
) -> None:
    first = tmp_path / "first"
    render_reference("demo", first, repo)

    elsewhere = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(repo, elsewhere)
    (elsewhere / "NEWS").write_text("a commit that does not touch the template\n")
    git(elsewhere, "add", "NEWS")
    git(elsewhere, "commit", "--quiet", "--message=Unrelated change")
    second = tmp_path / "second"
    render_reference("demo", second, elsewhere)

    assert tree_contents(first) == tree_contents(second)


def tree_contents(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }
