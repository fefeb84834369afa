"""A deployment of the server for tests: one replica on SQLite, or three behind HAProxy
sharing PostgreSQL, every process real and on loopback.

`deployment("single", ...)` is what the suite runs by default; `deployment("replicas",
...)` (`nox -s scale`) starts PostgreSQL (Debian's package) in a scratch folder, three
replicas of the console script with one `MCP_REQUEST_STATE_KEY`, and HAProxy with
`deploy/haproxy.cfg`, the configuration docs/replicas.md shows. Replica r1 reaches its
database through `CommitWatch`, a pass-through proxy that can kill r1 the moment one
of its writes is committed, before r1 can answer.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
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


class CommitWatch:
    """A TCP proxy between one replica and PostgreSQL that passes everything through
    until `arm`ed; armed, it kills the replica (SIGKILL) the moment PostgreSQL reports
    a row inserted and committed (CommandComplete "INSERT 0 1", then ReadyForQuery),
    before the replica has read that report: it dies after its commit and before its
    reply. The replica connects without TLS or GSS encryption, so the proxy reads
    PostgreSQL's messages as they are: a type byte and a length.
    """

    def __init__(self, database_url: str) -> None:
        target = httpx.URL(database_url.replace("postgresql://", "http://", 1))
        self._target = (target.host, target.port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        port = self._listener.getsockname()[1]
        self.url = (
            database_url.replace(f"{target.host}:{target.port}", f"127.0.0.1:{port}")
            + "?sslmode=disable&gssencmode=disable"
        )
        self.victim: subprocess.Popen | None = None
        self.armed = threading.Event()
        self.fired = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        self.armed.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self._target)
            threading.Thread(target=_pump, args=(client, server), daemon=True).start()
            threading.Thread(
                target=self._watch, args=(server, client), daemon=True
            ).start()

    def _watch(self, server: socket.socket, client: socket.socket) -> None:
        """PostgreSQL to the replica, message by message."""
        inserted = False
        with server, client, contextlib.suppress(OSError):
            while message := _message(server):
                kind, body = message[:1], message[5:]
                if kind == b"C":
                    inserted = body.startswith(b"INSERT 0 1")
                elif kind == b"Z" and inserted and self.armed.is_set():
                    assert self.victim is not None
                    self.victim.send_signal(signal.SIGKILL)
                    self.victim.wait(timeout=10)
                    self.fired.set()
                    return
                client.sendall(message)

    def close(self) -> None:
        self._listener.close()


def _message(connection: socket.socket) -> bytes:
    """One PostgreSQL backend message, whole; b"" when the connection ends."""
    head = _exactly(connection, 5)
    if len(head) < 5:
        return b""
    (length,) = struct.unpack("!I", head[1:])
    body = _exactly(connection, length - 4)
    return head + body if len(body) == length - 4 else b""


def _exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size and (chunk := connection.recv(size - len(data))):
        data += chunk
    return data


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with source, sink, contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)


@dataclass
class Deployment:
    """Where clients connect, what serves them, and what HAProxy saw."""

    url: str
    replicas: list[Replica]
    haproxy_log: Path | None = None
    stats_url: str | None = None
    commit_watch: CommitWatch | None = None
    """Between r1 and its database (replicas only)."""
    killed: list[str] = field(default_factory=list)

    def kill(self, name: str) -> None:
        """Kill a replica at once (SIGKILL): no goodbye to its clients."""
        replica = next(r for r in self.replicas if r.name == name)
        replica.process.send_signal(signal.SIGKILL)
        replica.process.wait(timeout=10)
        self.killed.append(name)

    def kill_r1_after_its_next_commit(self) -> threading.Event:
        """Arm the commit watch: r1 dies after its next stored row is committed and
        before it answers. The event is set once it has."""
        assert self.commit_watch is not None, "only the replicas deployment has it"
        self.commit_watch.arm()
        self.killed.append("r1")
        return self.commit_watch.fired

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.name not in self.killed]

    def served(self) -> dict[str, list[str]]:
        """The replicas HAProxy sent each client's requests to, in order."""
        by_client: dict[str, list[str]] = {}
        for client, replica, _retries in self._requests():
            by_client.setdefault(client, []).append(replica)
        return by_client

    def last_request(self, client: str) -> tuple[str, int]:
        """The replica that answered the client's last request, and how many times
        HAProxy retried that request. (Any earlier request may also have been retried:
        one sent on a kept-alive connection the replica was closing comes back empty.)"""
        return [(r, retries) for c, r, retries in self._requests() if c == client][-1]

    def _requests(self) -> Iterator[tuple[str, str, int]]:
        lines = self.haproxy_log.read_text().splitlines() if self.haproxy_log else []
        for line in lines:
            # "%ci %[capture.req.hdr(0)] %b %s %ST %Tt %rc": client address, client
            # name, backend, replica, status, time, retries
            parts = line.split()
            if len(parts) == 7 and parts[1] != "-":
                yield parts[1], parts[3], int(parts[6].lstrip("+"))


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
def deployment(kind: str, scratch: Path, **settings: str) -> Iterator[Deployment]:
    """`single`: one replica on SQLite. `replicas`: three on PostgreSQL behind HAProxy.
    `settings` are more environment variables for every replica."""
    with ExitStack() as stack:
        environment = {
            "MCP_REQUEST_STATE_KEY": secrets.token_hex(32),
            "MCP_LOG_LEVEL": "WARNING",
            "COUNCIL_DB_URL": f"sqlite:///{scratch / 'council.db'}",
            "MCP_DB_URL": f"sqlite:///{scratch / 'usage.db'}",
            **settings,
        }
        if kind == "single":
            only = stack.enter_context(replica("r1", environment))
            yield Deployment(only.url, [only])
            return
        shared = stack.enter_context(postgres())
        environment["COUNCIL_DB_URL"] = environment["MCP_DB_URL"] = shared
        watch = CommitWatch(shared)
        stack.callback(watch.close)
        watched = {**environment, "COUNCIL_DB_URL": watch.url, "MCP_DB_URL": watch.url}
        replicas = [
            stack.enter_context(replica(f"r{n}", watched if n == 1 else environment))
            for n in (1, 2, 3)
        ]
        watch.victim = replicas[0].process
        log = scratch / "haproxy.log"
        url, stats = stack.enter_context(haproxy(replicas, log))
        yield Deployment(url, replicas, log, stats, watch)
