"""The shell commands a generated project's docs/deployment.md shows, and who runs them.

Each ```bash block there is marked on the line before it:

- `<!-- command: NAME -->`: a test runs the block as written, from the project's root
  (`run_doc_command(project, NAME)`): `lock` in `nox -s image`, `secrets` in
  test_deploy.py;
- `<!-- not run: WHY -->`: no test can run it here (`docker build`: there is no
  Docker engine), and WHY says what runs in its place.

test_deploy.py fails on a block marked neither way, and on a `command:` no test runs.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

DOC = Path("docs") / "deployment.md"
BLOCK = re.compile(
    r"(?:<!-- (command|not run): (.*?) -->\n)?```bash\n(.*?)```", re.DOTALL
)
# The `command:` blocks, and where each runs.
RUN_BY = {"lock": "tests/image/check_image.py", "secrets": "tests/test_deploy.py"}


def doc_blocks(project: Path) -> list[tuple[str, str, str]]:
    """Each ```bash block of the docs: (kind, label, code); kind '' when unmarked."""
    text = (project / DOC).read_text(encoding="utf-8")
    return [match.groups(default="") for match in BLOCK.finditer(text)]


def doc_command(project: Path, name: str) -> str:
    """The code of the block marked `<!-- command: name -->`."""
    found = [code for kind, label, code in doc_blocks(project) if label == name]
    if len(found) != 1 or name not in RUN_BY:
        raise LookupError(f"{DOC}: {len(found)} blocks marked `command: {name}`")
    return found[0]


def run_doc_command(
    project: Path, name: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the docs' command `name` with bash, as written, from the project's root;
    RuntimeError, in one line, if it fails."""
    code = doc_command(project, name)
    completed = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{DOC}'s `{name}` command failed: {last}")
    return completed
