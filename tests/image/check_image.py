"""`nox -s image`: a generated project's Dockerfile built and run for real, with podman.

The project with every pattern is rendered, locked as its docs say (`uv lock`, the
docs' own command), and its Dockerfile built unchanged with podman on local stand-ins
for the registry's base images (engine.py). The container then runs as a deployment
would, with a read-only root filesystem and a volume on its home, published on
loopback only, and must pass, in order:

1. it starts and answers GET /health;
2. the server (PID 1) is not root;
3. GET /ready is 200 with the root read-only: the council's database and the research
   index are written in the home volume, and nowhere else;
4. POST /mcp without the token is 401, and with a foreign Host 421;
5. the project's own scripts/smoke_check.py passes: both eras' handshake and
   tools/list, naming every pattern's tool;
6. the image's HEALTHCHECK passes (`podman healthcheck run`);
7. SIGTERM (`podman stop`) ends it within 10 s with exit status 0.

Controls, each an image derived from the built one (no second build), must fail the
check that guards against them: one running as root, one with a wrong ENTRYPOINT; and
the smoke check must fail, in one line, with a wrong token. Every container, volume
and image made here is removed at the end, on failure too, but the image built and its
build stage, kept as a build cache (`KEPT`). The project is rendered in the folder
given (`python tests/image/check_image.py FOLDER`; the nox session's own), the same
each run, and scratch files go to a temporary folder outside the checkout. Each
failure is one line; the exit status is 1.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docs_commands import run_doc_command
from image.engine import PodmanError, ensure_stand_ins, last_line, podman
from render import SAMPLE_ANSWERS, example_choices, render

# The tool each pattern adds: the smoke check must find every one of them.
PATTERN_TOOLS = {
    "summarizer": "summarize",
    "weather": "get_weather",
    "research": "research",
    "council": "council_debate",
}
ALLOWED_HOST = "mcp.example.com"
# Every character the Dockerfile's LABEL must escape (a quote, a backslash, a `$`),
# and some a JSON or TOML escaper would mangle: the label must carry it exactly.
DESCRIPTION = 'Ada\'s "notes": a \\ b, $HOME and ${PATH}, <b> & naïve'

HEALTHY_WITHIN = 30.0
STOP_WITHIN = 10.0
# What `useradd --create-home` puts in a home (Debian's /etc/skel): not the server's.
SKELETON = {".bashrc", ".bash_logout", ".profile"}
# What the build mounts into each step here (engine.py says why); never in the image.
UV_CONFIG = "native-tls = true\n"
KEPT = f"localhost/image-check-{SAMPLE_ANSWERS['project_name']}"
"""The built image (`:latest`) and its build stage (`:build`) stay in podman's storage
under these tags, so that the next build reuses their layers as a CI cache would: the
dependencies' layer while pyproject.toml and uv.lock are the same (the Dockerfile
copies them first, as docs/deployment.md says), and every layer while the project is
the same: it is rendered at the same path each run, which its README holds. What the
tags held before is removed."""


# A build step that makes a layer: every step but FROM, which names a base image.
LAYER_STEP = re.compile(r"^(?:\[\d+/\d+\] )?STEP \d+/\d+: (?!FROM )", re.MULTILINE)


class CheckFailed(Exception):
    """A check failed; the message says what, in one line."""


def main(folder: Path) -> int:
    started = time.monotonic()
    project = folder / "project"
    with ExitStack() as cleanup, tempfile.TemporaryDirectory() as scratch_folder:
        scratch = Path(scratch_folder)
        try:
            image = build(project, scratch)
            for line in check_container(image, project, cleanup, smoke_controls=True):
                print(f"  ok  {line}")
            run_controls(image, project, scratch, cleanup)
        except (CheckFailed, PodmanError) as failure:
            print(f"image: FAILED: {failure}", file=sys.stderr)
            return 1
        except (OSError, subprocess.TimeoutExpired) as failure:
            print(
                f"image: FAILED: {type(failure).__name__}: {failure}", file=sys.stderr
            )
            return 1
    print(f"image: ok in {time.monotonic() - started:.1f} s")
    return 0


def build(project: Path, scratch: Path) -> str:
    """Render the all-pattern project in `project` and lock it, build its image; the
    image's tag."""
    unknown = set(example_choices()) - set(PATTERN_TOOLS)
    if unknown:
        raise CheckFailed(f"no tool named for pattern(s) {sorted(unknown)}: add them")
    shutil.rmtree(project, ignore_errors=True)
    answers = {**SAMPLE_ANSWERS, "description": DESCRIPTION}
    render(project, {**answers, "examples": example_choices()})
    for line in ensure_stand_ins(project / "Dockerfile", scratch):
        print(f"image: stand-in {line}")
    locked = time.monotonic()
    try:
        run_doc_command(project, "lock", timeout=300)
    except RuntimeError as failure:
        raise CheckFailed(str(failure)) from None
    print(f"image: `uv lock` (docs/deployment.md) in {time.monotonic() - locked:.1f} s")

    uv_config = scratch / "uv-config"
    uv_config.mkdir()
    (uv_config / "uv.toml").write_text(UV_CONFIG)
    tag, stage = f"{KEPT}:latest", f"{KEPT}:build"
    before = {image_id(tag), image_id(stage)}
    flags = [
        "--isolation=chroot", "--pull=never", "--network=host",
        # HEALTHCHECK is a Docker image field: the OCI format would drop it.
        "--format=docker",
        "--volume=/etc/ssl/certs:/etc/ssl/certs:ro", f"--volume={uv_config}:/etc/uv:ro",
    ]  # fmt: skip
    built = time.monotonic()
    # The build stage first, under its own tag; the whole build then takes that stage
    # from it, so only this first output tells what the last run's layers served.
    stage_output = podman(
        "build", *flags, "--target=build", f"--tag={stage}", str(project), timeout=900
    ).stdout
    podman("build", *flags, f"--tag={tag}", str(project), timeout=900)
    seconds = time.monotonic() - built
    # What the tags held before is garbage now, with the layers only it used.
    for old in before - {image_id(tag), image_id(stage), None}:
        podman("rmi", old, check=False)
    cached = stage_output.count("--> Using cache")
    steps = len(LAYER_STEP.findall(stage_output))
    size = int(podman("image", "inspect", "--format={{.Size}}", tag).stdout)
    print(
        f"image: built {tag} in {seconds:.1f} s (build stage: {cached} of {steps} "
        f"steps from the cache); {size / 1e6:.0f} MB"
    )
    labels = json.loads(
        podman("image", "inspect", "--format={{json .Labels}}", tag).stdout
    )
    described = labels.get("org.opencontainers.image.description")
    if described != DESCRIPTION:
        raise CheckFailed(
            f"the description label reads {described!r}, not {DESCRIPTION!r}"
        )
    return tag


def check_container(
    image: str, project: Path, cleanup: ExitStack, *, smoke_controls: bool = False
) -> Iterator[str]:
    """Run `image` as a deployment would and check it (the module's 1-7); yields a
    line per check passed, raises CheckFailed at the first that fails."""
    token = secrets.token_hex(16)
    name = f"image-check-{secrets.token_hex(4)}"
    volume = f"{name}-home"
    podman("volume", "create", volume)
    cleanup.callback(podman, "volume", "rm", "--force", volume, check=False)
    port = free_port()
    # The port the image EXPOSEs: it must be the one the server listens on.
    exposed = podman(
        "image", "inspect", "--format={{json .Config.ExposedPorts}}", image
    )
    [container_port] = [key.split("/")[0] for key in json.loads(exposed.stdout)]
    cleanup.callback(podman, "rm", "--force", "--time=0", name, check=False)
    started = podman(
        "run", "--detach", f"--name={name}",
        "--read-only", "--read-only-tmpfs=false", f"--volume={volume}:/app/home",
        f"--publish=127.0.0.1:{port}:{container_port}",
        f"--env=MCP_HTTP_TOKEN={token}", f"--env=MCP_HTTP_ALLOWED_HOSTS={ALLOWED_HOST}",
        image, check=False,
    )  # fmt: skip
    if started.returncode != 0:
        raise CheckFailed(f"the container did not start: {last_line(started.stderr)}")
    base = f"http://127.0.0.1:{port}"

    # 1. It starts and answers /health.
    waited = wait_for_health(name, port)
    yield f"started; GET /health 200 after {waited:.1f} s"

    # 2. Not root.
    status = podman("exec", name, "cat", "/proc/1/status").stdout
    uid = re.search(r"(?m)^Uid:\s+(\d+)", status)
    if uid is None or uid.group(1) == "0":
        raise CheckFailed("the server runs as root (uid 0): the image needs a USER")
    yield f"the server (PID 1) runs as uid {uid.group(1)}"

    # 3. Ready on a read-only root, writing in its home only.
    code, body = request(port, "GET", "/ready")
    if code != 200:
        raise CheckFailed(f"GET /ready on a read-only root filesystem: {code} {body}")
    wrote = files_in_volume(volume)
    if not wrote:
        raise CheckFailed("GET /ready was 200, yet nothing was written in /app/home")
    written = podman("exec", name, "sh", "-c", "touch /app/probe", check=False)
    if written.returncode == 0:
        raise CheckFailed("the root filesystem is writable despite --read-only")
    yield (
        f"GET /ready 200 {body} on a read-only root; in the home volume: "
        + ", ".join(wrote)
    )

    # 4. The token and the Host.
    code, _ = request(port, "POST", "/mcp", body="{}")
    if code != 401:
        raise CheckFailed(f"POST /mcp without the token: {code}, not 401")
    authorized = {"Authorization": f"Bearer {token}"}
    code, _ = request(
        port, "POST", "/mcp", body="{}", host="evil.example", **authorized
    )
    if code != 421:
        raise CheckFailed(f"POST /mcp with Host: evil.example: {code}, not 421")
    yield "POST /mcp: 401 without the token, 421 for Host: evil.example"

    # 5. The project's smoke check, as operators run it.
    expect = [f"--expect={tool}" for tool in PATTERN_TOOLS.values()]
    checked = smoke_check(project, base, token, *expect)
    if checked.returncode != 0:
        raise CheckFailed(f"scripts/smoke_check.py: {last_line(checked.stderr)}")
    yield f"scripts/smoke_check.py: {checked.stdout.strip()}"
    if smoke_controls:
        wrong = smoke_check(project, base, "not-the-token")
        expected = "smoke check FAILED: initialize: HTTP 401: is the token right?"
        if (wrong.returncode, wrong.stderr.strip()) != (1, expected):
            raise CheckFailed(
                f"control: with a wrong token the smoke check gave {wrong.returncode}"
                f" and {wrong.stderr.strip()!r}, not 1 and {expected!r}"
            )
        yield f"control: a wrong token fails it, exit status 1: {expected}"

    # 6. The image's HEALTHCHECK.
    health = podman("healthcheck", "run", name, check=False, timeout=30)
    if health.returncode != 0:
        raise CheckFailed(
            f"HEALTHCHECK: {last_line(health.stderr + health.stdout) or 'unhealthy'}"
        )
    yield "HEALTHCHECK (podman healthcheck run): healthy"

    # 7. SIGTERM: podman stop sends the image's stop signal, SIGKILL after 10 s.
    stopping = time.monotonic()
    podman("stop", f"--time={STOP_WITHIN:g}", name, timeout=STOP_WITHIN + 20)
    took = time.monotonic() - stopping
    state = json.loads(podman("inspect", "--format={{json .State}}", name).stdout)
    if took >= STOP_WITHIN or state["ExitCode"] != 0:
        raise CheckFailed(
            f"SIGTERM: stopped after {took:.1f} s with exit status {state['ExitCode']}"
            f" (within {STOP_WITHIN:g} s with 0 expected)"
        )
    # uvicorn re-raises the signal after its graceful shutdown; as PID 1 the process
    # ignores it (no handler left) and exits 0. A server that ignored SIGTERM would
    # be killed after 10 s (137); one that died of it at once would skip this line.
    if "Application shutdown complete" not in logs(name):
        raise CheckFailed("SIGTERM: exit status 0, but no graceful shutdown in the log")
    yield f"SIGTERM: a graceful shutdown, exit status 0, in {took:.1f} s"


def run_controls(image: str, project: Path, scratch: Path, cleanup: ExitStack) -> None:
    """Broken images derived from `image`: each must fail its check, in one line."""
    controls = {
        "runs as root": ("USER 0", "the server runs as root"),
        "wrong entry point": (
            'ENTRYPOINT ["not-the-server"]',
            "the container did not start: ",
        ),
    }
    for label, (instruction, expected) in controls.items():
        tag = f"{image}-{label.replace(' ', '-')}"
        context = scratch / f"control-{label.replace(' ', '-')}"
        context.mkdir()
        (context / "Containerfile").write_text(f"FROM {image}\n{instruction}\n")
        cleanup.callback(remove_image, tag)
        podman(
            "build", "--quiet", "--isolation=chroot", "--pull=never",
            "--format=docker", f"--tag={tag}", str(context),
        )  # fmt: skip
        try:
            for _ in check_container(tag, project, cleanup):
                pass
        except CheckFailed as failure:
            if not str(failure).startswith(expected):
                raise CheckFailed(
                    f"control ({label}): failed, but not as expected: {failure}"
                ) from None
            print(f"control ({label}): fails as it must: {failure}")
        else:
            raise CheckFailed(f"control ({label}): every check passed")


def wait_for_health(name: str, port: int) -> float:
    """Seconds until GET /health answered 200; CheckFailed if the container exits
    first or HEALTHY_WITHIN passes."""
    started = time.monotonic()
    while time.monotonic() - started < HEALTHY_WITHIN:
        state = json.loads(podman("inspect", "--format={{json .State}}", name).stdout)
        if not state["Running"]:
            raise CheckFailed(
                f"the container exited with status {state['ExitCode']} before "
                f"/health answered: {last_line(logs(name))}"
            )
        try:
            if request(port, "GET", "/health")[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.3)
    raise CheckFailed(f"GET /health: no answer within {HEALTHY_WITHIN:g} s")


def request(
    port: int, method: str, path: str, body: str = "", host: str = "", **headers: str
) -> tuple[int, str]:
    """One HTTP request to the container; its status and (short) body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=bool(host))
        if host:
            connection.putheader("Host", host)
        for name, value in {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            **headers,
        }.items():
            connection.putheader(name, value)
        encoded = body.encode()
        connection.putheader("Content-Length", str(len(encoded)))
        connection.endheaders(encoded)
        response = connection.getresponse()
        return response.status, response.read(300).decode(errors="replace")
    finally:
        connection.close()


def smoke_check(
    project: Path, base: str, token: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """The generated project's scripts/smoke_check.py against `base`."""
    script = project / "scripts" / "smoke_check.py"
    return subprocess.run(
        [sys.executable, str(script), base, *args],
        env={**os.environ, "MCP_HTTP_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def files_in_volume(volume: str) -> list[str]:
    """The files the container wrote in its home volume, relative to it."""
    inspect = podman("volume", "inspect", "--format={{.Mountpoint}}", volume)
    mountpoint = Path(inspect.stdout.strip())
    return sorted(
        str(path.relative_to(mountpoint))
        for path in mountpoint.rglob("*")
        if path.is_file() and path.name not in SKELETON
    )


def logs(name: str) -> str:
    completed = podman("logs", name, check=False)
    return completed.stdout + completed.stderr


def remove_image(tag: str) -> None:
    podman("rmi", "--force", tag, check=False)


def image_id(tag: str) -> str | None:
    found = podman("image", "inspect", "--format={{.Id}}", tag, check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} FOLDER (where the project is rendered)")
    sys.exit(main(Path(sys.argv[1]).resolve()))
