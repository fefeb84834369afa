"""Reference servers: committed renders of the template, checked for drift.

Each ``reference_servers/<name>/.copier-answers.yml`` holds the answers that produce
that server. Rendering them always happens into an empty directory, so a file the
template stopped producing is noticed (``copier recopy`` would leave it behind).

The rendered ``.copier-answers.yml`` is normalised so that a render is byte-identical
across commits and machines: ``_src_path`` becomes the relative path back to the
repository root and ``_commit`` is dropped.

Command line (run by ``nox -s drift`` and ``nox -s regenerate``)::

    python tests/references.py drift [NAME ...]       list differences, exit 1 if any
    python tests/references.py regenerate [NAME ...]  rewrite the reference servers

To add a reference server, write ``reference_servers/<name>/.copier-answers.yml``
(answers only, plus ``_src_path: ../..``) and run ``nox -s regenerate``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from render import REPO_ROOT, render

REFERENCE_SERVERS = "reference_servers"
ANSWERS_FILE = ".copier-answers.yml"
# Where a reference server's docs say it lives (their from-source commands). Rendered
# anywhere else, it would hold the temporary folder of each render: a placeholder that
# only the reference copies carry keeps them byte-identical everywhere.
PROJECT_DIR = "/path/to/copier-mcp-sampling/reference_servers/{name}"


class ReferenceServerError(Exception):
    """A reference server cannot be rendered or compared."""


@dataclass(frozen=True)
class Drift:
    """What regenerating a reference server would do, as paths relative to it."""

    would_add: list[str] = field(default_factory=list)
    would_change: list[str] = field(default_factory=list)
    would_delete: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.would_add or self.would_change or self.would_delete)

    def report(self, where: str, done: bool = False) -> str:
        heading = (
            f"{where} regenerated:"
            if done
            else f"{where} differs from what the template renders; regenerating would:"
        )
        lines = [heading]
        for verb, paths in [
            ("add", self.would_add),
            ("change", self.would_change),
            ("delete", self.would_delete),
        ]:
            lines += [f"  {verb:<7}{where}/{path}" for path in paths]
        return "\n".join(lines)


def reference_names(repo_root: Path = REPO_ROOT) -> list[str]:
    """Every reference server, i.e. every directory with an answers file."""
    return sorted(
        answers.parent.name
        for answers in (repo_root / REFERENCE_SERVERS).glob(f"*/{ANSWERS_FILE}")
    )


def render_reference(name: str, destination: Path, repo_root: Path = REPO_ROOT) -> None:
    """Render reference server ``name`` into ``destination`` (which must not exist)."""
    reference = repo_root / REFERENCE_SERVERS / name
    answers_path = reference / ANSWERS_FILE
    if not answers_path.is_file():
        raise ReferenceServerError(f"{answers_path} does not exist")
    answers = yaml.safe_load(answers_path.read_text(encoding="utf-8")) or {}
    # Keys starting with "_" are copier's bookkeeping (_src_path, _commit), not answers.
    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    data["project_dir"] = PROJECT_DIR.format(name=name)
    render(destination, data, template=repo_root)
    _normalise_answers_file(
        destination / ANSWERS_FILE, src_path=Path(os.path.relpath(repo_root, reference))
    )


def _normalise_answers_file(path: Path, src_path: Path) -> None:
    if not path.is_file():
        raise ReferenceServerError(
            f"the template did not render {ANSWERS_FILE}; without it a reference "
            "server cannot be regenerated (and users cannot `copier update`)"
        )
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("_commit:"):
            continue  # `git describe` output: changes with every commit
        if line.startswith("_src_path:"):
            line = f"_src_path: {src_path.as_posix()}\n"  # absolute on each machine
        kept.append(line)
    path.write_text("".join(kept), encoding="utf-8")


def visible_files(directory: Path) -> set[str]:
    """Files under ``directory`` that git would show: tracked or untracked, not ignored.

    Paths are relative to ``directory``. Tracked files deleted from the work tree
    are left out: regenerating would bring them back, so they count as missing.
    """
    listing = subprocess.run(
        [
            "git",
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            ".",
        ],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    if listing.returncode != 0:
        raise ReferenceServerError(
            f"git ls-files failed in {directory}: {listing.stderr}"
        )
    return {
        path
        for path in listing.stdout.split("\0")
        if path and (directory / path).is_file()
    }


def compare(rendered: Path, reference: Path) -> Drift:
    """What replacing ``reference`` by ``rendered`` would add, change and delete."""
    rendered_files = {
        path.relative_to(rendered).as_posix()
        for path in rendered.rglob("*")
        if path.is_file()
    }
    reference_files = visible_files(reference)
    return Drift(
        would_add=sorted(rendered_files - reference_files),
        would_change=sorted(
            path
            for path in rendered_files & reference_files
            if not _same_file(rendered / path, reference / path)
        ),
        would_delete=sorted(reference_files - rendered_files),
    )


def _same_file(left: Path, right: Path) -> bool:
    # git records the executable bit, so a lost or gained one is drift too.
    def executable(path: Path) -> bool:
        return bool(path.stat().st_mode & stat.S_IXUSR)

    return left.read_bytes() == right.read_bytes() and executable(left) == executable(
        right
    )


def find_drift(name: str, repo_root: Path = REPO_ROOT) -> Drift:
    with tempfile.TemporaryDirectory(prefix="reference-render-") as scratch:
        rendered = Path(scratch) / name
        render_reference(name, rendered, repo_root)
        return compare(rendered, repo_root / REFERENCE_SERVERS / name)


def regenerate(name: str, repo_root: Path = REPO_ROOT) -> Drift:
    """Make reference server ``name`` exactly what the template renders.

    Only files git would show are deleted, so ignored local files (a developer's
    ``.venv``) survive. Returns what was done.
    """
    reference = repo_root / REFERENCE_SERVERS / name
    with tempfile.TemporaryDirectory(prefix="reference-render-") as scratch:
        rendered = Path(scratch) / name
        render_reference(name, rendered, repo_root)
        drift = compare(rendered, reference)
        for path in drift.would_delete:
            (reference / path).unlink()
            _remove_empty_parents(reference / path, stop_at=reference)
        for path in drift.would_add + drift.would_change:
            (reference / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(rendered / path, reference / path)
    return drift


def _remove_empty_parents(path: Path, stop_at: Path) -> None:
    for parent in path.parents:
        if parent == stop_at or any(parent.iterdir()):
            return
        parent.rmdir()


def main(argv: list[str], repo_root: Path = REPO_ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["drift", "regenerate"])
    parser.add_argument("names", nargs="*", help="reference servers (default: all)")
    arguments = parser.parse_args(argv)

    known = reference_names(repo_root)
    if not known:
        # A repository without reference servers means the check checks nothing.
        print(f"no {REFERENCE_SERVERS}/*/{ANSWERS_FILE} found", file=sys.stderr)
        return 1
    if unknown := sorted(set(arguments.names) - set(known)):
        print(
            f"unknown reference server(s) {', '.join(unknown)}; known: "
            f"{', '.join(known)} (a new one needs its {ANSWERS_FILE} first)",
            file=sys.stderr,
        )
        return 2
    names = arguments.names or known
    drifted = False
    for name in names:
        where = f"{REFERENCE_SERVERS}/{name}"
        if arguments.action == "regenerate":
            drift = regenerate(name, repo_root)
            print(drift.report(where, done=True) if drift else f"{where}: up to date")
        elif drift := find_drift(name, repo_root):
            drifted = True
            print(drift.report(where), file=sys.stderr)
        else:
            print(f"{where}: no drift")
    if drifted:
        print(
            "Run `nox -s regenerate`, review the diff and commit it.", file=sys.stderr
        )
    return 1 if drifted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
