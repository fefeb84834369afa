"""The official MCP conformance suite against a server built from the template.

    python tests/interop/conformance.py NODE_DIR

`conformance_server.py` is the summarizer reference server plus the suite's fixtures,
served over HTTP the way the `summarizer` command serves it. Every scenario of the
active suite must pass, except those in `conformance-baseline.yml`, each of which says
why; a listed scenario that passes fails the run too (the baseline is stale).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness import server_environment, serving_http

HERE = Path(__file__).resolve().parent


def main(node_dir: Path) -> int:
    suite = node_dir / "node_modules/@modelcontextprotocol/conformance/dist/index.js"
    node_has_glob = subprocess.run(
        ["node", "-e", "process.exit(require('fs').globSync ? 0 : 1)"],
        check=False,
        timeout=30,
    )
    # The suite is built for Node 22; on Node 20 the shim stands in for fs.globSync.
    shim = (
        []
        if node_has_glob.returncode == 0
        else ["--import", str(node_dir / "node20-globsync.mjs")]
    )
    with server_environment() as env:
        # The suite sends no token; `test_sampling` must reach the client's LLM.
        for variable in ("MCP_HTTP_TOKEN", "MCP_SAMPLING_MODE"):
            env.pop(variable, None)
        server = [sys.executable, str(HERE / "conformance_server.py")]
        with serving_http(server, env) as url:
            done = subprocess.run(
                [
                    "node",
                    *shim,
                    str(suite),
                    "server",
                    "--url",
                    url,
                    "--expected-failures",
                    str(HERE / "conformance-baseline.yml"),
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
    summary = done.stdout[done.stdout.find("=== SUMMARY ===") :]
    print(summary.strip() or done.stdout[-3000:] + done.stderr[-3000:])
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve()))
