"""What the interop checks share: reference servers as processes, and a stand-in Open-Meteo.

Standard library only: the checks run in environments that hold the reference servers
(or fast-agent) and nothing of this repository.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_SERVERS = ROOT / "reference_servers"
OPEN_METEO = REFERENCE_SERVERS / "weather" / "tests" / "patterns" / "open_meteo"
OPEN_METEO_ROUTES = {
    "/v1/search": "geocoding_paris.json",
    "/v1/forecast": "forecast_metric.json",
}


SERVERS_AT_ONCE = max(2, os.cpu_count() or 1)
"""Reference servers a check drives at the same time: a server's own runs stay in
order (they share its data, the council's database or the research cache), and the
runs of different servers overlap, so that every core has work (each stdio run starts
a server process)."""

T = TypeVar("T")


def each_server_at_once(checks: Iterable[Callable[[], T]]) -> list[T]:
    """Run each server's check (`checks`), `SERVERS_AT_ONCE` at a time; their results
    in the order given."""
    with ThreadPoolExecutor(SERVERS_AT_ONCE) as pool:
        return list(pool.map(lambda check: check(), checks))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def server_environment() -> Iterator[dict[str, str]]:
    """The environment every reference server runs in here.

    The patterns' data go to a scratch folder, and the weather server asks a stand-in
    Open-Meteo on loopback (the recorded Paris answers) instead of the internet.
    """
    with tempfile.TemporaryDirectory() as scratch, open_meteo() as url:
        yield {
            **os.environ,
            "RESEARCH_CACHE_DIR": f"{scratch}/cache",
            "COUNCIL_DB_PATH": f"{scratch}/council.db",
            "WEATHER_GEOCODING_URL": f"{url}/v1/search",
            "WEATHER_FORECAST_URL": f"{url}/v1/forecast",
            "MCP_LOG_LEVEL": "WARNING",
        }


@contextlib.contextmanager
def open_meteo() -> Iterator[str]:
    """Open-Meteo's two endpoints on a loopback port, answering for Paris; the URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (
                OPEN_METEO / OPEN_METEO_ROUTES[urlsplit(self.path).path]
            ).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def serving_http(command: list[str], env: dict[str, str]) -> Iterator[str]:
    """`command --port N` serving streamable HTTP on a free loopback port; its URL.

    Its output is dropped: what the checks look at comes back to the clients.
    """
    port = free_port()
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(f"{command[0]} exited at start-up") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{command[0]} never listened") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)
