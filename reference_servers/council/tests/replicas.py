"""A deployment of the server for tests: one replica on SQLite, or three behind HAProxy
sharing PostgreSQL, every process real and on loopback.

`deployment("single", ...)` is what the suite runs by default; `deployment("replicas",
...)` (`nox -s scale`) starts PostgreSQL (Debian's package) in a scratch folder, three
replicas of the console script with one `MCP_REQUEST_STATE_KEY`, and HAProxy with
`deploy/haproxy.cfg`, the configuration the README shows.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from conftest import PROJECT, free_port, server_command

HAPROXY_CONFIG = PROJECT / "deploy" / "haproxy.cfg"


@dataclass
class Replica:
    name: str
    url: str
    process: subprocess.Popen


@dataclass
class Deployment:
    """Where clients connect, what serves them, and what HAProxy saw."""

    url: str
    replicas: list[Replica]
    haproxy_log: Path | None = None
    stats_url: str | None = None
    killed: list[str] = field(default_factory=list)

    def kill(self, name: str) -> None:
        """Kill a replica at once (SIGKILL): no goodbye to its clients."""
        replica = next(r for r in self.replicas if r.name == name)
        replica.process.send_signal(signal.SIGKILL)
        replica.process.wait(timeout=10)
        self.killed.append(name)

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.name not in self.killed]

    def served(self) -> dict[str, list[str]]:
        """The replicas HAProxy sent each client's requests to, in order."""
        by_client: dict[str, list[str]] = {}
        lines = self.haproxy_log.read_text().splitlines() if self.haproxy_log else []
        for line in lines:
            # "%ci %[capture.req.hdr(0)] %b %s %ST %Tt": client address, client name,
            # backend, replica, status, time
            parts = line.split()
            if len(parts) == 6 and parts[1] != "-":
                by_client.setdefault(parts[1], []).append(parts[3])
        return by_client


def wait_until_healthy(url: str, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, f"{what} exited at start-up"
        assert time.monotonic() < deadline, f"{what} never became ready"
        time.sleep(0.1)


@contextmanager
def postgres() -> Iterator[str]:
    """A PostgreSQL server of its own in a scratch folder, on a free port; its URL."""
    initdb = shutil.which("initdb") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None
    )
    if initdb is None:
        pytest.fail(
            "PostgreSQL is not installed: `apt-get install postgresql` (.ci/run "
            "installs it when it is missing)."
        )
    pg_ctl = str(Path(initdb).with_name("pg_ctl"))
    # PostgreSQL refuses to run as root: then it runs as Debian's postgres user.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="council-postgres-"))
    if as_user:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"),
         "-w", "start"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       check=False, capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def replica(name: str, environment: dict[str, str]) -> Iterator[Replica]:
    port = free_port()
    command = server_command("--transport", "http", "--port", str(port))
    process = subprocess.Popen(
        [command.command, *command.args], env={**command.env, **environment}
    )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/ready", process, f"replica {name}")
        yield Replica(name, f"http://127.0.0.1:{port}/mcp", process)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


@contextmanager
def haproxy(replicas: list[Replica], log: Path) -> Iterator[tuple[str, str]]:
    """HAProxy with the project's configuration; the frontend's and stats' URLs."""
    executable = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if executable is None:
        pytest.fail(
            "HAProxy is not installed: `apt-get install haproxy` (.ci/run installs "
            "it when it is missing)."
        )
    frontend, stats = free_port(), free_port()
    environment = {
        **os.environ,
        "MCP_FRONTEND": f"127.0.0.1:{frontend}",
        "MCP_STATS": f"127.0.0.1:{stats}",
    }
    for number, each in enumerate(replicas, start=1):
        environment[f"MCP_REPLICA_{number}"] = httpx.URL(each.url).netloc.decode()
    with log.open("w") as output:
        process = subprocess.Popen(
            [executable, "-db", "-f", str(HAPROXY_CONFIG)],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_healthy(f"http://127.0.0.1:{stats}/stats", process, "HAProxy")
        yield f"http://127.0.0.1:{frontend}/mcp", f"http://127.0.0.1:{stats}/stats"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def deployment(kind: str, scratch: Path) -> Iterator[Deployment]:
    """`single`: one replica on SQLite. `replicas`: three on PostgreSQL behind HAProxy."""
    with ExitStack() as stack:
        environment = {
            "MCP_REQUEST_STATE_KEY": secrets.token_hex(32),
            "MCP_LOG_LEVEL": "WARNING",
            "COUNCIL_DB_URL": f"sqlite:///{scratch / 'council.db'}",
        }
        if kind == "single":
            only = stack.enter_context(replica("r1", environment))
            yield Deployment(only.url, [only])
            return
        environment["COUNCIL_DB_URL"] = stack.enter_context(postgres())
        replicas = [
            stack.enter_context(replica(f"r{n}", environment)) for n in (1, 2, 3)
        ]
        log = scratch / "haproxy.log"
        url, stats = stack.enter_context(haproxy(replicas, log))
        yield Deployment(url, replicas, log, stats)
