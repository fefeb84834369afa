"""Run the Dockerfile's own install and start commands here, without a container engine.

`python tests/image_check.py` (run by `nox -s package`, from the project directory)
reads ./Dockerfile and plays it in a throwaway directory that stands for the image's
`/app`, its one root:

- each build stage's ARG, ENV, WORKDIR, COPY and RUN, in a filesystem of its own
  (BuildKit's `RUN --mount=...` flags are dropped: they change how a step runs, not
  what it makes). `COPY --from=` another image is not run: the `uv` on PATH here stands
  in for the one the Dockerfile copies, and its version is compared with the tag;
- the final stage's `COPY --from=` a stage (so a venv left behind is missed here too),
  and its ENV; its RUN (setting up the image as root, such as `useradd`), USER, EXPOSE
  and LABEL are checked but not run;
- then its ENTRYPOINT and CMD with its ENV only (the image's PATH, not this one's) plus
  what `docker run -e` adds: a free port, a token, an allowed host. It checks that the
  server refuses to start without the token, waits for the HEALTHCHECK's own command,
  then talks MCP over HTTP: `initialize` and `tools/list` with the token, 401 without
  it, 421 for a Host not allowed, and `GET /ready`.

Exit status 0, or 1 with one last line saying what failed.

    >>> [(s.name, [i.keyword for i in s.instructions]) for s in parse(
    ...     "FROM python:3.13 AS build\\n# note\\nRUN a \\\\\\n  # inside\\n  && b\\n"
    ...     "FROM python:3.13\\nCOPY --from=build /app /app\\n")[1]]
    [('build', ['RUN']), ('1', ['COPY'])]
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
"""The image's one root: every path the Dockerfile names is under it."""
HEALTHY_WITHIN = 30.0
"""Seconds the server has, once started, to pass its HEALTHCHECK and /ready."""
STOP_WITHIN = 10.0
# What `docker run` starts with besides the image's ENV (the python image's PATH).
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_ENV = {"PATH": IMAGE_PATH, "LANG": "C.UTF-8"}
# Host variables a build step must not see: the caller's venv, our own settings.
NOT_IN_BUILD = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME", "UV_PYTHON")
ALLOWED_HOST = "mcp.example.com"


class CheckFailed(Exception):
    """What failed, in one line."""


@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int

    def __str__(self) -> str:
        return f"line {self.line}: {self.keyword} {self.arguments}"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Instructions with their continuation lines joined, comments left out.

    As Docker does, a comment or blank line inside a continuation is dropped.
    """
    lines: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        escape = re.match(r"#\s*escape\s*=\s*(\S)", stripped)
        if not pending and escape and escape.group(1) != "\\":
            raise CheckFailed(f"line {number}: only the \\ escape is supported")
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending.append(raw.rstrip()[:-1])
            continue
        pending.append(raw)
        lines.append((start, " ".join(part.strip() for part in pending)))
        pending = []
    if pending:
        lines.append((start, " ".join(part.strip() for part in pending)))
    return lines


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """The global ARGs (before the first FROM) and the stages of a Dockerfile."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in logical_lines(text):
        keyword, _, arguments = line.partition(" ")
        keyword, arguments = keyword.upper(), arguments.strip()
        heredoc = re.search(r"<<-?['\"]?\w+", arguments)
        if heredoc and keyword in {"RUN", "COPY", "ADD"}:
            raise CheckFailed(f"line {number}: heredocs are not supported here")
        if keyword == "FROM":
            words = [w for w in arguments.split() if not w.startswith("--")]
            if not words:
                raise CheckFailed(f"line {number}: FROM names no image")
            base = substitute(words[0], global_args)
            named = len(words) >= 3 and words[1].upper() == "AS"
            stages.append(Stage(words[2] if named else str(len(stages)), base))
        elif not stages:
            if keyword != "ARG":
                raise CheckFailed(f"line {number}: {keyword} before the first FROM")
            name, _, default = arguments.partition("=")
            global_args[name.strip()] = unquote(default.strip())
        else:
            stages[-1].instructions.append(Instruction(keyword, arguments, number))
    if not stages:
        raise CheckFailed("the Dockerfile has no FROM")
    return global_args, stages


def unquote(text: str) -> str:
    words = shlex.split(text)
    return words[0] if len(words) == 1 else text


def substitute(text: str, variables: dict[str, str]) -> str:
    """Docker's variable substitution: `$X`, `${X}`, `${X:-default}`, `${X:+set}`.

    >>> substitute("${A}/b:${B:-c}:${A:+d}:$$", {"A": "/app"})
    '/app/b:c:d:$$'
    """

    def value(match: re.Match[str]) -> str:
        if match.group(0) == "\\$":
            return "$"
        name = match.group(1) or match.group(4)
        current = variables.get(name, "")
        if match.group(2) == "-":
            return current or match.group(3)
        if match.group(2) == "+":
            return match.group(3) if current else ""
        return current

    return re.sub(r"\\\$|\$\{(\w+)(?::([-+])([^}]*))?\}|\$([A-Za-z_]\w*)", value, text)


def command_of(arguments: str, shell: list[str]) -> list[str]:
    """An exec-form (JSON) or shell-form command."""
    if arguments.startswith("["):
        try:
            words = json.loads(arguments)
        except json.JSONDecodeError:
            words = None
        if isinstance(words, list) and all(isinstance(w, str) for w in words):
            return words
    return [*shell, arguments]


def duration(text: str) -> float:
    """A HEALTHCHECK duration in seconds.

    >>> duration("1m30s"), duration("500ms")
    (90.0, 0.5)
    """
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise CheckFailed(f"HEALTHCHECK: {text!r} is not a duration")
    return sum(float(number) * units[unit] for number, unit in parts)


class DockerIgnore:
    """The build context's .dockerignore: which paths `docker build` leaves out."""

    def __init__(self, context: Path) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        ignore = context / ".dockerignore"
        lines = ignore.read_text().splitlines() if ignore.exists() else []
        for line in lines:
            pattern = line.strip()
            if not pattern or pattern.startswith("#"):
                continue
            keep = pattern.startswith("!")
            pattern = pattern.lstrip("!").strip().strip("/")
            regex = ""
            for token in re.split(r"(\*\*/?|\*|\?)", pattern):
                regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                    token, re.escape(token)
                )
            self.rules.append((keep, re.compile(regex)))

    def excludes(self, relative: str) -> bool:
        """Whether the path, or a directory holding it, is left out."""
        parts = relative.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            excluded = False
            for keep, regex in self.rules:
                if regex.fullmatch(prefix):
                    excluded = not keep
            if excluded:
                return True
        return False


class Build:
    """The stages played one after the other in one scratch directory.

    Each stage's filesystem is mounted, in turn, at the same path standing for `/app`
    (so a venv's absolute paths hold from one stage to the next, as in the image); a
    finished stage's filesystem is kept aside for `COPY --from=`.
    """

    def __init__(self, context: Path, scratch: Path) -> None:
        self.context = context
        self.scratch = scratch
        self.root = scratch / ROOT.strip("/")
        self.ignore = DockerIgnore(context)
        self.finished: dict[str, Path] = {}
        self.notes: list[str] = []
        self.uv_tags: list[str] = []
        self.base_image = ""

    def map(self, text: str) -> str:
        """`/app` in a command or value, as the scratch directory."""
        return re.sub(rf"(?<![\w./-]){ROOT}(?![\w.-])", str(self.root), text)

    def inside(self, path: str, what: str) -> Path:
        if path != ROOT and not path.startswith(ROOT + "/"):
            raise CheckFailed(f"{what}: {path} is outside {ROOT}; keep it the one root")
        return Path(self.map(path))

    def stage(
        self, stage: Stage, global_args: dict[str, str], final: bool
    ) -> dict[str, Any]:
        """Play one stage; what the final one needs to start the server."""
        if self.root.exists():
            raise CheckFailed(f"stage {stage.name} found the previous one mounted")
        self.root.mkdir(parents=True)
        env: dict[str, str] = {}
        args: dict[str, str] = {}
        cwd = self.root
        shell = ["/bin/sh", "-c"]
        found: dict[str, Any] = {"env": env, "cwd": cwd, "skipped": []}
        for instruction in stage.instructions:
            keyword, arguments = instruction.keyword, instruction.arguments
            scope = {**BASE_ENV, **args, **env}
            if keyword == "ARG":
                name, has_default, default = arguments.partition("=")
                name = name.strip()
                value = unquote(default.strip()) if has_default else None
                args[name] = value if value is not None else global_args.get(name, "")
            elif keyword == "ENV":
                env.update(self.env_pairs(arguments, scope))
            elif keyword == "WORKDIR":
                path = substitute(unquote(arguments), scope)
                if not path.startswith("/"):
                    path = f"{ROOT}/{cwd.relative_to(self.root)}/{path}"
                cwd = self.inside(os.path.normpath(path), str(instruction))
                cwd.mkdir(parents=True, exist_ok=True)
                found["cwd"] = cwd
            elif keyword in {"COPY", "ADD"}:
                self.copy(instruction, substitute(arguments, scope), cwd)
            elif keyword == "SHELL":
                shell = command_of(arguments, [])
            elif keyword == "RUN" and not final:
                self.run(instruction, shell, {**args, **env}, cwd)
            elif keyword == "RUN":
                found["skipped"].append(arguments.split()[0])
            elif keyword in {"ENTRYPOINT", "CMD"}:
                found[keyword] = [self.map(w) for w in command_of(arguments, shell)]
                found[f"{keyword} form"] = "exec" if arguments.startswith("[") else "sh"
            elif keyword == "HEALTHCHECK":
                found["HEALTHCHECK"] = self.healthcheck(arguments, shell)
            elif keyword == "EXPOSE":
                found["EXPOSE"] = [p.split("/")[0] for p in arguments.split()]
        self.finished[stage.name] = self.scratch / f"stage-{stage.name}"
        if not final:
            self.root.rename(self.finished[stage.name])
        return found

    def env_pairs(self, arguments: str, scope: dict[str, str]) -> dict[str, str]:
        words = shlex.split(arguments)
        if words and "=" not in words[0]:  # the legacy `ENV NAME value` form
            words = [f"{words[0]}={' '.join(words[1:])}"]
        pairs = {}
        for word in words:
            name, _, value = word.partition("=")
            pairs[name] = self.map(substitute(value, scope))
        return pairs

    def copy(self, instruction: Instruction, arguments: str, cwd: Path) -> None:
        flags: list[str] = []
        while arguments.startswith("--"):  # --from=, --chown=, --chmod=, --link
            flag, _, arguments = arguments.partition(" ")
            flags.append(flag)
            arguments = arguments.lstrip()
        words = command_of(arguments, [])
        if words == [arguments]:
            words = shlex.split(arguments)
        if len(words) < 2:
            raise CheckFailed(f"{instruction}: needs a source and a destination")
        *sources, destination = words
        origin = next((f[7:] for f in flags if f.startswith("--from=")), None)
        if origin is not None and origin not in self.finished:
            # Another image: not run. Only uv is expected, and stood in for.
            if "astral-sh/uv" in origin:
                self.uv_tags.append(origin.rpartition(":")[2])
            else:
                self.notes.append(f"not run (another image): {instruction}")
            return
        if instruction.keyword == "ADD" and any("://" in s for s in sources):
            raise CheckFailed(f"{instruction}: ADD of a URL is not supported here")
        if not destination.startswith("/"):
            destination = f"{ROOT}/{cwd.relative_to(self.root)}/{destination}"
        into_directory = destination.endswith("/") or len(sources) > 1
        target = self.inside(os.path.normpath(destination), str(instruction))
        paths: list[tuple[str, Path]] = []
        for source in sources:
            if origin is None:
                matches = sorted(self.context.glob(source.lstrip("/")))
                for path in matches:
                    relative = path.relative_to(self.context).as_posix()
                    if self.ignore.excludes(relative):
                        raise CheckFailed(
                            f"{instruction}: {relative} is left out by .dockerignore"
                        )
                if not matches:
                    raise CheckFailed(
                        f"{instruction}: no {source} in the build context"
                    )
                paths += [(source, path) for path in matches]
            else:
                stage_root = self.finished[origin]
                if source != ROOT and not source.startswith(ROOT + "/"):
                    raise CheckFailed(f"{instruction}: {source} is outside {ROOT}")
                path = stage_root / source[len(ROOT) :].lstrip("/")
                if not path.exists():
                    raise CheckFailed(f"{instruction}: stage {origin} made no {source}")
                paths.append((source, path))
        for _source, path in paths:
            if path.is_dir():
                shutil.copytree(
                    path,
                    target,
                    symlinks=True,
                    dirs_exist_ok=True,
                    ignore=self.left_out,
                )
            else:
                into = into_directory or target.is_dir()
                file_target = target / path.name if into else target
                file_target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, file_target, follow_symlinks=False)

    def left_out(self, directory: str, names: list[str]) -> set[str]:
        """What .dockerignore leaves out of a directory copied from the context."""
        try:
            relative = Path(directory).relative_to(self.context).as_posix()
        except ValueError:  # a directory of another stage: no .dockerignore there
            return set()
        prefix = "" if relative == "." else f"{relative}/"
        return {name for name in names if self.ignore.excludes(prefix + name)}

    def run(
        self, instruction: Instruction, shell: list[str], env: dict[str, str], cwd: Path
    ) -> None:
        arguments = instruction.arguments
        while arguments.startswith("--"):  # BuildKit flags (--mount=..., --network=...)
            flag, _, arguments = arguments.partition(" ")
            self.notes.append(f"dropped from RUN: {flag}")
            arguments = arguments.lstrip()
        command = [self.map(word) for word in command_of(arguments, shell)]
        build_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("MCP_") and k not in NOT_IN_BUILD
        }
        if "VIRTUAL_ENV" in os.environ:  # the venv this script runs in, not the image's
            venv_bin = str(Path(os.environ["VIRTUAL_ENV"]) / "bin")
            build_env["PATH"] = os.pathsep.join(
                p for p in build_env.get("PATH", "").split(os.pathsep) if p != venv_bin
            )
        # The image's PATH, with this machine's standing for the base image's (its
        # python, and the uv copied from another image).
        host_path = build_env.get("PATH", IMAGE_PATH)
        build_env |= env
        build_env["PATH"] = env.get("PATH", IMAGE_PATH).replace(IMAGE_PATH, host_path)
        if python := self.base_python():
            build_env["UV_PYTHON"] = python
        completed = subprocess.run(
            command, cwd=cwd, env=build_env, capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            output = (completed.stdout + completed.stderr).strip().splitlines()
            sys.stderr.write("\n".join(output[-40:]) + "\n")
            raise CheckFailed(f"{instruction} failed (exit {completed.returncode})")

    def base_python(self) -> str | None:
        """The base image's Python version, if this machine has it (else uv's own)."""
        match = re.fullmatch(
            r"(?:docker\.io/)?(?:library/)?python:(\d+\.\d+)\S*", self.base_image
        )
        if not match or not (uv := shutil.which("uv")):
            return None
        found = subprocess.run(
            [uv, "python", "find", "--no-python-downloads", match.group(1)],
            capture_output=True,
            check=False,
        )
        if found.returncode != 0:
            self.notes.append(
                f"no Python {match.group(1)} here (the base image's): uv's default used"
            )
            return None
        return match.group(1)

    def healthcheck(self, arguments: str, shell: list[str]) -> dict[str, Any]:
        words = arguments.split(" ", 1)
        if words[0].upper() == "NONE":
            raise CheckFailed("HEALTHCHECK NONE: the image needs a health check")
        options: dict[str, float] = {}
        rest = arguments
        while rest.startswith("--"):
            option, _, rest = rest.partition(" ")
            name, _, value = option[2:].partition("=")
            options[name] = duration(value) if name != "retries" else float(value)
            rest = rest.lstrip()
        keyword, _, command = rest.partition(" ")
        if keyword.upper() != "CMD" or not command.strip():
            raise CheckFailed(f"HEALTHCHECK {arguments}: expected CMD and a command")
        return {
            "command": [self.map(w) for w in command_of(command.strip(), shell)],
            "timeout": options.get("timeout", 30.0),
        }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def request(
    url: str,
    message: dict[str, Any] | None,
    headers: dict[str, str],
) -> tuple[int, dict[str, str], Any]:
    """One HTTP request; the status, headers and JSON (or last SSE event) answered."""
    sent = urllib.request.Request(
        url,
        data=None if message is None else json.dumps(message).encode(),
        method="GET" if message is None else "POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            **headers,
        },
    )
    try:
        with urllib.request.urlopen(sent, timeout=10) as response:
            body = response.read().decode()
            status, reply_headers = response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), None
    events = [
        line[5:].strip() for line in body.splitlines() if line.startswith("data:")
    ]
    payload = events[-1] if events else body
    try:
        return status, reply_headers, json.loads(payload) if payload.strip() else None
    except json.JSONDecodeError:
        return status, reply_headers, payload


def talk_mcp(port: int, token: str) -> str:
    """initialize and tools/list with the token; what it found."""
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
    status, _, _ = request(url, initialize, {})
    if status != 401:
        raise CheckFailed(f"a request without the token got {status}, not 401")
    status, _, _ = request(url, initialize, auth | {"Host": "attacker.example"})
    if status != 421:
        raise CheckFailed(f"a request with Host attacker.example got {status}, not 421")
    status, headers, reply = request(url, initialize, auth | {"Host": ALLOWED_HOST})
    if status != 200 or not isinstance(reply, dict) or "result" not in reply:
        raise CheckFailed(
            f"initialize (Host {ALLOWED_HOST}) answered {status}: {reply}"
        )
    session = {k: v for k, v in headers.items() if k.lower() == "mcp-session-id"}
    if not session:
        raise CheckFailed("initialize answered no mcp-session-id header")
    notice = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    request(url, notice, auth | session)
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    status, _, reply = request(url, listing, auth | session)
    tools = reply.get("result", {}).get("tools", []) if isinstance(reply, dict) else []
    if status != 200 or not tools:
        raise CheckFailed(f"tools/list answered {status} with no tools: {reply}")
    names = ", ".join(sorted(tool["name"] for tool in tools))
    return (
        f"{len(tools)} tools ({names}); 401 without the token, 421 for a foreign Host"
    )


class Server:
    """The final stage's ENTRYPOINT and CMD, as `docker run` starts them."""

    def __init__(self, command: list[str], build: Build) -> None:
        self.command = command
        self.log = build.scratch / "server.log"
        self.cwd = build.root
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self.process

    def last_words(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return lines[-1].strip() if lines else "(no output)"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def final_environment(found: dict[str, Any], build: Build) -> dict[str, str]:
    """What the container's process sees: the image's ENV, not this machine's.

    Without an ENV HOME, a home outside the image's root that does not exist.
    """
    image_env: dict[str, str] = found["env"]
    return BASE_ENV | {"HOME": str(build.scratch / "no-home")} | image_env


def check_final_stage(final: Stage) -> None:
    """What the final stage must have, before spending a build on it."""
    keywords = [instruction.keyword for instruction in final.instructions]
    for needed in ("ENTRYPOINT", "HEALTHCHECK"):
        if needed not in keywords:
            raise CheckFailed(f"the final stage has no {needed}")
    users = [i.arguments for i in final.instructions if i.keyword == "USER"]
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        raise CheckFailed("the final stage runs as root: give it a USER")


def check(project: Path) -> None:
    dockerfile = project / "Dockerfile"
    if not dockerfile.exists():
        raise CheckFailed(f"no Dockerfile in {project}")
    global_args, stages = parse(dockerfile.read_text(encoding="utf-8"))
    check_final_stage(stages[-1])
    scratch = Path(tempfile.mkdtemp(prefix="image-check-"))
    servers: list[Server] = []
    try:
        build = Build(project, scratch)
        started = time.monotonic()
        found: dict[str, Any] = {}
        for number, stage in enumerate(stages):
            build.base_image = stage.base
            found = build.stage(stage, global_args, final=number == len(stages) - 1)
        built = time.monotonic() - started
        for note in dict.fromkeys(build.notes):  # once each, in order
            print(f"image-check: {note}")
        uv = shutil.which("uv")
        if uv is None and build.uv_tags:
            raise CheckFailed("uv is not on PATH: it stands in for the image's uv")
        uv_version = (
            subprocess.run(
                [uv or "uv", "--version"], capture_output=True, text=True, check=False
            ).stdout.split()[1:2]
            if uv
            else []
        )
        for tag in build.uv_tags:
            same = "the same" if uv_version == [tag] else "NOT the same"
            print(
                f"image-check: uv {''.join(uv_version)} here, {same} as the image's {tag}"
            )
        print(f"image-check: {len(stages) - 1} build stage(s) played in {built:.1f} s")
        start_and_talk(found, build, servers)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def start_and_talk(found: dict[str, Any], build: Build, servers: list[Server]) -> None:
    """Start the server as `docker run` would, wait for its health, talk MCP to it."""
    if found["skipped"]:
        print(
            f"image-check: final-stage RUN not run here: {', '.join(found['skipped'])}"
        )
    env = final_environment(found, build)
    if found.get("EXPOSE") and env.get("MCP_PORT") not in found["EXPOSE"]:
        raise CheckFailed(
            f"EXPOSE {' '.join(found['EXPOSE'])} but MCP_PORT={env.get('MCP_PORT')}"
        )
    command = list(found["ENTRYPOINT"])
    if found["ENTRYPOINT form"] == "exec":  # a shell-form ENTRYPOINT ignores CMD
        command += found.get("CMD", [])
    executable = shutil.which(command[0], path=env["PATH"])
    if executable is None:
        raise CheckFailed(
            f"ENTRYPOINT {command[0]}: the build installed no such command"
        )
    outside = not Path(executable).resolve().is_relative_to(build.root.resolve())
    if outside and command[0] not in {"python", "python3", "/bin/sh", "sh"}:
        raise CheckFailed(
            f"ENTRYPOINT {command[0]}: not in the image's {ROOT} (only at "
            f"{executable} on this machine)"
        )
    server = Server([executable, *command[1:]], build)
    servers.append(server)
    port, token = free_port(), secrets.token_hex(32)

    # First as `docker run` without -e: on 0.0.0.0 the server must refuse to start.
    refused = server.start(env | {"MCP_PORT": str(port)}, found["cwd"])
    deadline = time.monotonic() + HEALTHY_WITHIN
    while refused.poll() is None and not listening(port):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if refused.poll() is None:
        server.stop()
        raise CheckFailed(
            f"the server started without MCP_HTTP_TOKEN (MCP_HOST={env.get('MCP_HOST')}"
            "): the image must serve on 0.0.0.0, where the token rule applies"
        ) from None
    if refused.returncode == 0 or "MCP_HTTP_TOKEN" not in server.log.read_text():
        raise CheckFailed(
            f"without MCP_HTTP_TOKEN the server exited {refused.returncode}, not "
            f"naming the variable: {server.last_words()}"
        )
    print("image-check: without -e MCP_HTTP_TOKEN it refuses to start, as it should")

    run_env = env | {
        "MCP_PORT": str(port),
        "MCP_HTTP_TOKEN": token,
        "MCP_HTTP_ALLOWED_HOSTS": ALLOWED_HOST,
    }
    healthcheck = found["HEALTHCHECK"]
    started = time.monotonic()
    process = server.start(run_env, found["cwd"])
    while True:
        try:
            healthy = (
                subprocess.run(
                    healthcheck["command"],
                    env=run_env,
                    capture_output=True,
                    timeout=healthcheck["timeout"],
                    check=False,
                ).returncode
                == 0
            )
        except (subprocess.TimeoutExpired, OSError):
            healthy = False
        if healthy:
            break
        if process.poll() is not None:
            raise CheckFailed(
                f"the server exited ({process.returncode}): {server.last_words()}"
            )
        if time.monotonic() - started > HEALTHY_WITHIN:
            raise CheckFailed(f"HEALTHCHECK failed for {HEALTHY_WITHIN:.0f} s")
        time.sleep(0.3)
    print(
        f"image-check: HEALTHCHECK passed {time.monotonic() - started:.1f} s after start"
    )
    while (ready := request(f"http://127.0.0.1:{port}/ready", None, {}))[0] != 200:
        if time.monotonic() - started > HEALTHY_WITHIN:
            raise CheckFailed(f"GET /ready answered {ready[0]}: {ready[2]}")
        time.sleep(0.3)
    print(f"image-check: GET /ready: {json.dumps(ready[2])}")
    print(f"image-check: MCP over HTTP: {talk_mcp(port, token)}")


if __name__ == "__main__":
    try:
        check(Path.cwd())
    except CheckFailed as error:
        print(f"image-check: {error}", file=sys.stderr)
        sys.exit(1)
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        print(f"image-check: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
    print("image-check: ok")
