"""Every command the READMEs and docs show, run as a reader pastes it.

A page is a README.md or a Markdown file under docs/. Its ```bash blocks are the
commands a reader pastes, and each is one of these, by the comment on the line
before it:

- none: run by `run_pages`, in the page's order, in one bash shell per page (so a
  `cd` or an `export` carries over to the next block), from the folder the page is
  read in; the first command that fails fails the page;
- `<!-- serves: URL -->`: a server that runs until stopped: it is started in the
  page's shell and must answer GET URL with 200 (`serves: stdio`: answer
  `initialize` on its standard input and output), then it is stopped;
- `<!-- command: NAME -->`: run as written by the test `RUN_BY` names (the image
  session runs `uv lock`, the Inspector session its two commands, the docs session
  a project's `uvx nox -s docs`), not by the page's run;
- `<!-- not run: WHY -->`: not run here, and WHY says why and what runs in its place
  (`not_run` lists them all).

Nothing in a block is changed but the template's published address, which becomes
the checkout's path (`PUBLISHED`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from typing_extensions import Self

PUBLISHED = "https://github.com/OWNER/copier-mcp-sampling"
"""Where the template is published, in its README and docs."""
RUN_BY = {
    "docs": "tests/docs_site.py",
    "lock": "tests/image/check_image.py",
    "secrets": "tests/test_deploy.py",
    "inspector": "tests/inspector/drive.py",
    "inspector-modern": "tests/inspector/drive.py",
}
"""The `command:` blocks, and the test that runs each."""
BLOCK = re.compile(
    r"(?:<!-- (command|not run|serves): (.*?) -->\n)?```bash\n(.*?)```", re.DOTALL
)
BLOCK_WITHIN = 900.0
SERVER_WITHIN = 90.0


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    kind: str
    """`run`, `serves`, `command` or `not run`."""
    label: str
    code: str

    def __str__(self) -> str:
        return f"{self.page.name}:{self.line}"


class CommandFailed(Exception):
    """A block failed: where, and the last lines it printed."""


def pages(root: Path) -> list[Path]:
    """A project's (or the template's) pages: README.md, then docs/ in name order."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return [
        Block(
            page,
            text.count("\n", 0, match.start()) + 1,
            match.group(1) or "run",
            match.group(2) or "",
            match.group(3),
        )
        for match in BLOCK.finditer(text)
    ]


def every_block(root: Path) -> list[Block]:
    return [block for page in pages(root) for block in blocks(page)]


def not_run(root: Path) -> list[str]:
    """Every block the tests do not run, with its reason, one line each."""
    return [
        f"{block}: {block.code.strip().splitlines()[0]}  # {block.label}"
        for block in every_block(root)
        if block.kind == "not run"
    ]


def doc_command(root: Path, name: str) -> str:
    """The code of the one block marked `<!-- command: name -->`."""
    found = [
        block.code
        for block in every_block(root)
        if block.kind == "command" and block.label == name
    ]
    if len(found) != 1 or name not in RUN_BY:
        raise LookupError(f"{root}: {len(found)} blocks marked `command: {name}`")
    return found[0]


def reader_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment as a reader's terminal has it, plus `env`: without
    the nox session's venv, which `uv run` and `uv sync` would otherwise take for the
    project's own (nox's uv backend sets UV_PROJECT_ENVIRONMENT)."""
    session_only = {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "CONDA_PREFIX"}
    inherited = {k: v for k, v in os.environ.items() if k not in session_only}
    return {**inherited, **(env or {})}


def run_doc_command(
    root: Path, name: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the docs' command `name` with bash, as written, from the project's root,
    in a reader's environment plus `env`; RuntimeError, in one line, if it fails."""
    completed = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", doc_command(root, name)],
        cwd=root,
        env=reader_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the docs' `{name}` command failed: {last}")
    return completed


def run_pages(
    root: Path,
    where: Path,
    checkout: Path | None = None,
    env: dict[str, str] | None = None,
) -> list[str]:
    """Run every page of `root` (`pages`), each in a shell of its own started in
    `where`, with `env` added to the environment (a reader's machine: which Python
    `uv` picks, say); `checkout` replaces the published address. A block the same as
    one that ran already, on another page, is not run twice. One line per block."""
    done: list[str] = []
    ran: dict[str, Block] = {}
    for page in pages(root):
        runnable = [b for b in blocks(page) if b.kind in {"run", "serves"}]
        if runnable:
            with Shell(where, env) as shell:
                for block in runnable:
                    if block.code in ran:  # the same command, shown on two pages
                        done.append(f"{block} ran as {ran[block.code]}")
                        continue
                    ran[block.code] = block
                    code = block.code.replace(PUBLISHED, str(checkout or PUBLISHED))
                    started = time.monotonic()
                    if block.kind == "serves":
                        shell.serve(block, code)
                    else:
                        shell.run(block, code)
                    seconds = time.monotonic() - started
                    done.append(f"{block} {seconds:5.1f} s  {_first_line(code)}")
    return done


def _first_line(code: str) -> str:
    return code.strip().splitlines()[0]


class Shell:
    """One bash, as a reader's terminal: blocks run in it one after the other."""

    def __init__(self, where: Path, env: dict[str, str] | None = None) -> None:
        self.where = where
        self.env = {**reader_environment(env), "PS1": ""}
        self.scratch = Path(tempfile.mkdtemp(prefix="docs-commands-"))
        self.output: list[str] = []

    def __enter__(self) -> Self:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=self.where,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        self._send("set -eo pipefail")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def _send(self, code: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{code}\n")
        self.process.stdin.flush()

    def run(self, block: Block, code: str) -> str:
        """Run `code`; its output, or CommandFailed naming the block."""
        marker = f"__block_done_{time.monotonic_ns()}__"
        self._send(f"{code}\necho {marker}")
        return self._until(block, marker)

    def _until(self, block: Block, marker: str) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + BLOCK_WITHIN
        lines: list[str] = []
        for line in self.process.stdout:
            if line.strip() == marker:
                return "".join(lines)
            lines.append(line)
            if time.monotonic() > deadline:
                break
        tail = "".join(lines[-8:]).strip()
        raise CommandFailed(f"{block} `{_first_line(block.code)}` failed:\n{tail}")

    def serve(self, block: Block, code: str) -> None:
        """Start the server `code` starts, check it answers, stop it."""
        script = self.scratch / f"serve-{block.line}.sh"
        script.write_text(code)
        log = self.scratch / f"serve-{block.line}.log"
        stdio = block.label == "stdio"
        stdin = self.scratch / f"serve-{block.line}.in"
        if stdio:
            os.mkfifo(stdin)
        source = stdin if stdio else "/dev/null"
        pid_marker = f"__pid_{time.monotonic_ns()}__"
        self._send(
            f"setsid bash {script} < {source} > {log} 2>&1 &\necho {pid_marker} $!"
        )
        pid = int(self._until_pid(block, pid_marker))
        try:
            if stdio:
                _answers_initialize(stdin, log, block)
            else:
                _answers_get(block.label, log, block)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            self._send("wait || true")

    def _until_pid(self, block: Block, marker: str) -> str:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(marker):
                return line.split()[1]
        raise CommandFailed(f"{block}: the shell ended before starting the server")


def _answers_get(url: str, log: Path, block: Block) -> None:
    deadline = time.monotonic() + SERVER_WITHIN
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise CommandFailed(f"{block}: {url} did not answer: {_tail(log)}")


def _answers_initialize(stdin: Path, log: Path, block: Block) -> None:
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "docs", "version": "0"},
        },
    }
    with stdin.open("w") as server:  # opens once the server reads its input
        server.write(json.dumps(hello) + "\n")
        server.flush()
        deadline = time.monotonic() + SERVER_WITHIN
        while time.monotonic() < deadline:
            if '"serverInfo"' in _read(log):
                return
            time.sleep(0.2)
    raise CommandFailed(f"{block}: no answer to initialize on stdio: {_tail(log)}")


def _tail(log: Path) -> str:
    return " | ".join(_read(log).strip().splitlines()[-3:])


def _read(log: Path) -> str:
    """What a server wrote so far (nothing, before its shell made the file)."""
    return log.read_text(errors="replace") if log.exists() else ""
