"""The official TypeScript SDK clients (v1 and v2) drive every reference server.

    python tests/interop/ts_clients.py NODE_DIR

NODE_DIR holds this folder's JavaScript files with `npm ci` run in it (the nox session
prepares it outside the checkout). Each reference server runs its scenario from
`scenarios/<server>.json` over stdio and streamable HTTP, as a client with sampling
tools, with text-only sampling, and without sampling: SDK v1 on the legacy era
(2025-11-25) only, SDK v2 on the legacy era and pinned to the modern one (2026-07-28,
sampling by MRTR). Servers run side by side (`harness.each_server_at_once`), each
server's runs in order, each client's in one Node process (`--batch`). A run passes
when `checks.check` finds nothing wrong: the result, the requests, each answer applied
to the request it answers, and on the modern era the tools/call rounds. A scenario
with `cancel_after` also runs, on the legacy era, with the client cancelling the tool
call while that many sampling requests are open: the server must then cancel each of
them (`notifications/cancelled`). On the modern era nothing is open on the server
between rounds, so there is nothing to cancel.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from checks import check, rounds_summary
from harness import (
    REFERENCE_SERVERS,
    each_server_at_once,
    server_environment,
    serving_http,
)

HERE = Path(__file__).resolve().parent
CLIENTS = {"v1": ["legacy"], "v2": ["legacy", "modern"]}
PROFILES = ["tools", "text", "none"]
RUN_SECONDS = 180
"""How long one run may take; a batch of N runs is given N times as long."""


def cancellation_problems(out: dict, client: str, open_requests: int) -> list[str]:
    """The client cancelled the tool call: the server must cancel each open request."""
    if "error" in out:
        return [f"client failed: {out['error']}"]
    problems = []
    if len(out["requests"]) != open_requests:
        problems.append(f"{len(out['requests'])} requests open, not {open_requests}")
    expected = len(out["requests"])
    # SDK v1 ignores notifications/cancelled for request id 0 (its `_oncancel` tests
    # `!requestId`). The mcp 1.x server numbered a session's first request 0, so v1
    # counted eight of nine; mcp 2.x starts at 1, and v1 counts all nine.
    if client == "v1" and 0 in out["request_ids"]:
        expected -= 1
    if out["cancelled"] != expected:
        problems.append(f"{out['cancelled']} of {len(out['requests'])} cancelled")
    return problems


def cases(script: dict, era: str) -> list[tuple[str, list[str]]]:
    """Each run of a scenario: a label and the client's arguments besides the target."""
    runs = [(profile, ["--profile", profile]) for profile in PROFILES]
    if "cancel_after" in script and era == "legacy":
        runs.append(
            (
                "cancel",
                ["--profile", "tools", "--cancel-after", str(script["cancel_after"])],
            )
        )
    return runs


def run_batch(
    client_script: Path, runs: list[list[str]], env: dict[str, str]
) -> Iterator[dict]:
    """Each run's output (the client's JSON line) as it ends, all runs in one Node
    process (`--batch`); a run with no output, as a dict holding its `error`."""
    with subprocess.Popen(
        ["node", str(client_script), "--batch"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as node:
        # Every run is a line of input; the client reads them all before the first run.
        node.stdin.write("".join(json.dumps(arguments) + "\n" for arguments in runs))
        node.stdin.close()
        stderr: list[str] = []
        reader = threading.Thread(
            target=lambda: stderr.extend(node.stderr), daemon=True
        )
        reader.start()
        watchdog = threading.Timer(RUN_SECONDS * len(runs), node.kill)
        watchdog.start()
        try:
            for _arguments in runs:
                line = node.stdout.readline()
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    yield {"error": f"no result; stderr: {''.join(stderr)[-800:]}"}
        finally:
            watchdog.cancel()
            node.kill()


def check_server(
    scenario: Path, node_dir: Path, env: dict[str, str]
) -> list[tuple[str, bool]]:
    """Every run of one reference server's scenario, in order, each client's runs in
    one Node process: each run's client and era ("v2 modern"), and whether it
    failed."""
    server, script = scenario.stem, json.loads(scenario.read_text())
    outcomes = []
    with serving_http([server, "--transport", "http"], env) as url:
        targets = {"stdio": ["--command", server], "http": ["--url", url]}
        for client, eras in CLIENTS.items():
            runs_here = [
                (era, transport, label, [
                    "--transport", transport, *target, "--era", era, *options,
                    str(scenario),
                ])
                for transport, target in targets.items()
                for era in eras
                for label, options in cases(script, era)
            ]  # fmt: skip
            outputs = run_batch(
                node_dir / f"client-{client}.mjs",
                [arguments for *_, arguments in runs_here],
                env,
            )
            for (era, transport, label, _arguments), out in zip(
                runs_here, outputs, strict=True
            ):
                problems = (
                    cancellation_problems(out, client, script["cancel_after"])
                    if label == "cancel"
                    else check(out, script, label, era)
                )
                summary = (
                    f"{out.get('cancelled')} of {len(out.get('requests', []))} "
                    "cancelled"
                    if label == "cancel"
                    else rounds_summary(out)
                )
                print(
                    f"{'ok  ' if not problems else 'FAIL'} {client} {era:6} "
                    f"{transport:5} {label:6} {server:14} "
                    f"{out.get('call_ms', 0):5} ms  {summary:32} "
                    f"{'; '.join(problems)}",
                    flush=True,
                )
                outcomes.append((f"{client} {era}", bool(problems)))
    return outcomes


def main(node_dir: Path) -> int:
    started = time.monotonic()
    with server_environment() as env:
        scenarios = sorted((HERE / "scenarios").glob("*.json"))
        outcomes = [
            outcome
            for server_outcomes in each_server_at_once(
                functools.partial(check_server, scenario, node_dir, env)
                for scenario in scenarios
            )
            for outcome in server_outcomes
        ]
    tally = Counter(key for key, _failed in outcomes)
    failures = sum(failed for _key, failed in outcomes)
    per_client = ", ".join(f"{key} {count}" for key, count in tally.items())
    print(
        f"TypeScript clients: {len(outcomes)} runs ({per_client}), {failures} failed, "
        f"{time.monotonic() - started:.0f} s"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    if not (REFERENCE_SERVERS / "council").is_dir():
        sys.exit("run from a checkout of copier-mcp-sampling")
    sys.exit(main(Path(sys.argv[1]).resolve()))
