"""Run the Dockerfile's own install and start commands here, without a container engine.

`python tests/image_check.py` (run by `nox -s package`) reads ./Dockerfile, runs its
build stages' COPY and RUN in a throwaway directory standing for the image's `/app`
(its one root), starts the final stage's ENTRYPOINT and CMD with its ENV plus what
`docker run -e` would add (a port, a token, an allowed host), waits for its own
HEALTHCHECK, then talks MCP over HTTP: `initialize` and `tools/list` with the token,
401 without. A Dockerfile that no longer installs or starts the server fails here.

Commands the image runs as root to set itself up (the final stage's RUN, such as
`useradd`) and instructions about the container itself (USER, EXPOSE, LABEL) are
not run. Exit status 0, or 1 with one line saying what failed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = "/app"
HEALTHY_WITHIN = 60.0


class ImageCheckError(Exception):
    """What failed, in one line."""


@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(dockerfile: str) -> list[Stage]:
    """Stages of a Dockerfile, each a list of (INSTRUCTION, arguments)."""
    logical = re.sub(r"\\\n", " ", dockerfile)
    stages: list[Stage] = []
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = arguments.split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else ""
            stages.append(Stage(name))
        elif not stages:
            raise ImageCheckError(f"{instruction} before the first FROM")
        else:
            stages[-1].instructions.append((instruction, arguments.strip()))
    if not stages:
        raise ImageCheckError("the Dockerfile has no FROM")
    return stages


def command_of(arguments: str) -> list[str]:
    """An exec-form (JSON) or shell-form command."""
    if arguments.startswith("["):
        return [str(word) for word in json.loads(arguments)]
    return ["sh", "-c", arguments]


def host_environment() -> dict[str, str]:
    """What `docker build` and `docker run` would not bring: none of our settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MCP_")}


class Image:
    """The image's filesystem root `/app` mapped onto a scratch directory."""

    def __init__(self, context: Path, root: Path) -> None:
        self.context = context
        self.root = root
        self.env = host_environment()
        self.cwd = root

    def map(self, text: str) -> str:
        return re.sub(rf"(?<![\w.]){ROOT}(?=/|\b|$)", str(self.root), text)

    def set_env(self, arguments: str) -> None:
        for pair in shlex.split(arguments):
            name, _, value = pair.partition("=")
            value = re.sub(
                r"\$\{?(\w+)\}?", lambda m: self.env.get(m.group(1), ""), value
            )
            self.env[name] = self.map(value)

    def workdir(self, arguments: str) -> None:
        if not (arguments == ROOT or arguments.startswith(ROOT + "/")):
            raise ImageCheckError(f"WORKDIR {arguments}: keep {ROOT} the only root")
        self.cwd = Path(self.map(arguments))
        self.cwd.mkdir(parents=True, exist_ok=True)

    def copy(self, arguments: str) -> None:
        words = shlex.split(arguments)
        if any(word.startswith("--from=") for word in words):
            return  # from another image (uv) or stage (same root here)
        *sources, destination = words
        target = Path(self.map(destination))
        target = target if target.is_absolute() else self.cwd / target
        for source in sources:
            path = self.context / source
            if not path.exists():
                raise ImageCheckError(f"COPY {source}: not in the build context")
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)

    def run(self, arguments: str) -> None:
        command = [self.map(word) for word in command_of(arguments)]
        completed = subprocess.run(
            command,
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            sys.stderr.write(completed.stdout + completed.stderr)
            raise ImageCheckError(
                f"RUN {arguments} failed (exit {completed.returncode})"
            )


def build(stages: list[Stage], image: Image) -> tuple[list[str], list[str]]:
    """Run the build; returns the final stage's start command and health check."""
    *build_stages, final = stages
    for stage in build_stages:
        for instruction, arguments in stage.instructions:
            step = {
                "ENV": image.set_env,
                "WORKDIR": image.workdir,
                "COPY": image.copy,
                "RUN": image.run,
            }.get(instruction)
            if step:
                step(arguments)
    image.env = host_environment()
    entrypoint: list[str] = []
    cmd: list[str] = []
    healthcheck: list[str] = []
    for instruction, arguments in final.instructions:
        if instruction == "ENV":
            image.set_env(arguments)
        elif instruction == "WORKDIR":
            image.workdir(arguments)
        elif instruction == "COPY" and "--from=" in arguments:
            *_, source, _destination = shlex.split(arguments)
            if not Path(image.map(source)).exists():
                raise ImageCheckError(f"COPY {arguments}: the build made no {source}")
        elif instruction == "ENTRYPOINT":
            entrypoint = command_of(arguments)
        elif instruction == "CMD":
            cmd = command_of(arguments)
        elif instruction == "HEALTHCHECK":
            healthcheck = command_of(arguments.split(" CMD ", 1)[1].strip())
    if not entrypoint:
        raise ImageCheckError("the final stage has no ENTRYPOINT")
    if not healthcheck:
        raise ImageCheckError("the final stage has no HEALTHCHECK")
    return [*entrypoint, *cmd], healthcheck


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def post(
    url: str, message: dict[str, Any], headers: dict[str, str]
) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(message).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            **headers,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read().decode()
            status, reply_headers = response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), None
    data = [line[5:].strip() for line in body.splitlines() if line.startswith("data:")]
    payload = data[-1] if data else body
    return status, reply_headers, json.loads(payload) if payload.strip() else None


def talk_mcp(port: int, token: str) -> int:
    """initialize and tools/list with the token; the tool count."""
    url = f"http://127.0.0.1:{port}/mcp"
    auth = {"Authorization": f"Bearer {token}"}
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "image-check", "version": "1"},
        },
    }
    status, _, _ = post(url, initialize, {})
    if status != 401:
        raise ImageCheckError(f"a request without the token got {status}, not 401")
    status, headers, reply = post(url, initialize, auth)
    if status != 200 or not reply or "result" not in reply:
        raise ImageCheckError(f"initialize answered {status}: {reply}")
    session = {k: v for k, v in headers.items() if k.lower() == "mcp-session-id"}
    notice = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    post(url, notice, auth | session)
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    status, _, reply = post(url, listing, auth | session)
    tools = (reply or {}).get("result", {}).get("tools", [])
    if status != 200 or not tools:
        raise ImageCheckError(f"tools/list answered {status} with no tools: {reply}")
    return len(tools)


def check(project: Path) -> None:
    stages = parse((project / "Dockerfile").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="image-check-") as scratch:
        image = Image(project, Path(scratch) / ROOT.strip("/"))
        started = time.monotonic()
        command, healthcheck = build(stages, image)
        print(f"image-check: built in {time.monotonic() - started:.1f} s")
        executable = shutil.which(command[0], path=image.env["PATH"])
        if executable is None:
            raise ImageCheckError(
                f"ENTRYPOINT {command[0]}: the build installed no such command"
            )
        port, token = free_port(), secrets.token_hex(32)
        env = image.env | {
            "MCP_PORT": str(port),
            "MCP_HTTP_TOKEN": token,
            "MCP_HTTP_ALLOWED_HOSTS": "mcp.example.com",
        }
        log = Path(scratch) / "server.log"
        started = time.monotonic()
        with log.open("w") as stderr:
            server = subprocess.Popen(
                [executable, *command[1:]],
                cwd=image.cwd,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            while subprocess.run(
                healthcheck, env=env, capture_output=True, check=False
            ).returncode:
                if server.poll() is not None:
                    last = log.read_text().strip().splitlines()[-1:]
                    raise ImageCheckError(
                        f"the server exited ({server.returncode}): {' '.join(last)}"
                    )
                if time.monotonic() - started > HEALTHY_WITHIN:
                    raise ImageCheckError(
                        f"HEALTHCHECK failed for {HEALTHY_WITHIN:.0f} s"
                    )
                time.sleep(0.3)
            print(
                f"image-check: healthy {time.monotonic() - started:.1f} s after start"
            )
            tools = talk_mcp(port, token)
            print(f"image-check: MCP over HTTP: {tools} tools, 401 without the token")
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


if __name__ == "__main__":
    try:
        check(Path.cwd())
    except ImageCheckError as error:
        print(f"image-check: {error}", file=sys.stderr)
        sys.exit(1)
    print("image-check: ok")
