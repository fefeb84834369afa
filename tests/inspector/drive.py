"""`nox -s inspector`: a generated server in the MCP Inspector, used as a person would.

A summarizer project is rendered, and its docs' own commands (docs/inspector.md, the
blocks marked `command: inspector` and `command: inspector-modern`) open it in
`@modelcontextprotocol/inspector`, pinned by this folder's package-lock.json (npx runs
the locked copy when run from the folder `npm ci` filled). Playwright for Python drives
the Inspector's page on Debian's Chromium (headless, no browser download), once per
protocol era:

1. the server list, then the connect switch: the card shows "Connected" and the era's
   protocol version;
2. Tools: the first tool's form, filled and executed;
3. the "Sampling Request" dialog shows the fenced prompt; the answer is typed into
   "Response", key by key, and sent;
4. the tool's result appears on the page, and the Protocol monitor shows the calls
   (on the modern era: MRTR, two rounds);
5. what the page sent proves the era on the wire: `initialize` and a pushed reply
   (legacy), or `server/discover` and a `tools/call` retried with `inputResponses`
   and `requestState` (modern).

Every step is a screenshot, written into the docs (docs/images/inspector/), so the
pictures are always the ones this run saw. One line per failure; exit status 1.

    python tests/inspector/drive.py NODE_FOLDER SHOTS_FOLDER
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docs_commands import doc_command
from render import SAMPLE_ANSWERS, render

CHROMIUM = "/usr/bin/chromium"
ERAS = {
    "legacy": ("inspector", "2025-11-25"),
    "modern": ("inspector-modern", "2026-07-28"),
}
DOCUMENT = (
    "The town council met on Tuesday and agreed to repave Elm Street in May. "
    "The work will cost 120,000 euros, paid from the road budget. "
    "Two councillors voted against, asking for a cycle lane first."
)
ANSWER = (
    "On Tuesday the council agreed to repave Elm Street in May for 120,000 euros "
    "from the road budget; two councillors voted against, wanting a cycle lane first."
)
MODEL = "a-person-in-the-inspector"
URL_WITHIN = 60.0  # it prints its URL in 1-3 s; npx resolving the lock adds about 1 s
CONNECT_WITHIN_MS = 30_000  # the Inspector's own connection timeout
STEP_WITHIN_MS = 15_000
expect.set_options(timeout=STEP_WITHIN_MS)


class InspectorFailed(Exception):
    """A step failed; the message says which, in one line."""


def main(node_folder: Path, shots: Path) -> int:
    # The project (with the venv its `uv run` makes) and the Inspector's storage.
    with tempfile.TemporaryDirectory(prefix="inspector-") as scratch:
        return drive(Path(scratch), node_folder, shots)


def drive(scratch: Path, node_folder: Path, shots: Path) -> int:
    started = time.monotonic()
    shots.mkdir(parents=True, exist_ok=True)
    project = scratch / "inspect-demo"
    answers = {"project_name": "inspect-demo", "examples": ["summarizer"]}
    render(project, {**SAMPLE_ANSWERS, **answers})
    # The first `uv run` makes the project's environment, which may take longer than
    # the Inspector waits for a server to connect (30 s): once, before.
    subprocess.run(
        ["uv", "run", "--directory", str(project), "inspect-demo", "--help"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    print(f"inspector: project ready in {time.monotonic() - started:.1f} s")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"]
            )
            for era, (command, version) in ERAS.items():
                began = time.monotonic()
                storage = scratch / f"storage-{era}"
                storage.mkdir()
                inspector = Inspector(
                    doc_command(project, command), node_folder, storage
                )
                with inspector as url:
                    context = browser.new_context(
                        viewport={"width": 1280, "height": 900}
                    )
                    try:
                        Flow(context.new_page(), era, version, shots).run(url)
                    finally:
                        context.close()
                print(f"inspector: {era} ok in {time.monotonic() - began:.1f} s")
            browser.close()
    except (InspectorFailed, AssertionError, TimeoutError, PlaywrightError) as failure:
        first_line = str(failure).strip().splitlines()[0]
        print(f"inspector: FAILED: {first_line}", file=sys.stderr)
        return 1
    print(f"inspector: both eras in {time.monotonic() - started:.1f} s; {shots}")
    return 0


class Inspector:
    """The documented command, run as written by bash in a process group of its own;
    entering it gives the URL the Inspector prints (with its API token)."""

    def __init__(self, command: str, node_folder: Path, storage: Path) -> None:
        self.command = command
        self.node_folder = node_folder
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # Settings by environment, the command untouched: a fixed free port (0 is
        # refused), the MCP Apps sandbox on any free port (not 6275, which another
        # Inspector started as the README shows holds), no browser opened, secrets in
        # memory (no OS keychain here).
        self.environment = {
            **{k: v for k, v in os.environ.items() if k not in {"HOST"}},
            "CLIENT_PORT": str(port),
            "MCP_SANDBOX_PORT": "0",
            "MCP_AUTO_OPEN_ENABLED": "false",
            "MCP_INSPECTOR_SECRET_STORE": "memory",
            "MCP_STORAGE_DIR": str(storage),
            "NO_COLOR": "1",
            "npm_config_update_notifier": "false",
        }
        self.output: list[str] = []

    def __enter__(self) -> str:
        self.process = subprocess.Popen(
            ["bash", "-c", self.command],
            cwd=self.node_folder,
            env=self.environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # npx, node and the stdio server end together
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + URL_WITHIN
        announced = False
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise InspectorFailed(
                    f"`{self.command}` exited before printing its URL: "
                    f"{''.join(self.output[-3:]).strip()}"
                )
            announced = announced or "is up and running at" in line
            if announced and (match := re.search(r"https?://\S+", line)):
                return match.group(0)
        raise TimeoutError(f"`{self.command}` printed no URL within {URL_WITHIN:g} s")

    def __exit__(self, *_exc: object) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Flow:
    """One pass through the Inspector's page: connect, call a tool, answer its
    sampling request, read the result."""

    def __init__(self, page: Page, era: str, version: str, shots: Path) -> None:
        self.page, self.era, self.version, self.shots = page, era, version, shots
        self.sent: list[dict] = []
        """What the page posted to the Inspector's backend: the client's messages."""
        page.on("request", self._record)

    def _record(self, request) -> None:
        if request.method == "POST" and request.url.endswith("/api/mcp/send"):
            self.sent.append(json.loads(request.post_data or "{}").get("message", {}))

    def shot(self, step: str) -> None:
        # Disabled animations: the dialog is captured opaque, not half faded in.
        path = self.shots / f"{self.era}-{step}.png"
        self.page.screenshot(path=str(path), animations="disabled")

    def run(self, url: str) -> None:
        page = self.page
        main = page.get_by_role("main")
        page.goto(url)
        switch = page.get_by_role("switch", name=re.compile("^Connect or disconnect "))
        expect(switch.first).to_be_visible()
        self.shot("01-servers")

        # Mantine draws the switch's track over its input: the click must be forced.
        switch.first.click(force=True)
        card = page.locator(".mantine-Card-root").filter(has=switch.first)
        expect(card.get_by_text("Connected", exact=True)).to_be_visible(
            timeout=CONNECT_WITHIN_MS
        )
        expect(card.get_by_text(f"MCP {self.version}", exact=True)).to_be_visible()
        self.shot("02-connected")

        page.get_by_role("banner").get_by_text("Tools", exact=True).click()
        heading = page.get_by_role("heading", name=re.compile(r"^Tools \(\d+\)$"))
        tools = main.locator(".mantine-Card-root").filter(has=heading)
        expect(tools.get_by_role("button").first).to_be_visible()
        self.shot("03-tools")

        tools.get_by_role("button").first.click()
        main.get_by_role("textbox", name="text", exact=True).fill(DOCUMENT)
        main.get_by_role("textbox", name="max_words", exact=True).fill("40")
        self.shot("04-tool-form")

        main.get_by_role("button", name="Execute Tool").click()
        dialog = page.get_by_role("dialog", name="Sampling Request")
        expect(dialog).to_be_visible(timeout=CONNECT_WITHIN_MS)
        expect(dialog.get_by_text("UNTRUSTED document").first).to_be_visible()
        if self.era == "modern":  # the request came in an InputRequiredResult
            expect(dialog.get_by_text("input_required", exact=True)).to_be_visible()
        self.shot("05-sampling-request")
        response = dialog.get_by_role("textbox", name="Response")
        response.press_sequentially(ANSWER, delay=2)  # typed, as a person would
        model = dialog.get_by_role("textbox", name="Model Used")
        model.press("ControlOrMeta+a")
        model.press_sequentially(MODEL, delay=2)
        self.shot("06-sampling-answer")
        dialog.get_by_role("button", name="Send Response").click()
        expect(dialog).to_be_hidden()

        expect(page.get_by_role("heading", name="Results", exact=True)).to_be_visible()
        expect(main.get_by_text(ANSWER, exact=True)).to_be_visible()
        self.shot("07-result")

        monitor = page.get_by_role("radiogroup", name="Monitoring screen")
        monitor.get_by_text("Protocol", exact=True).click()
        if self.era == "modern":
            expect(main.get_by_text("MRTR", exact=True).first).to_be_visible()
        self.shot("08-protocol")
        self.check_wire()
        page.get_by_role("button", name="Disconnect from server").click()

    def check_wire(self) -> None:
        """The era, as the page spoke it: its handshake, and where the answer went."""
        methods = [message.get("method") for message in self.sent]
        calls = [m["params"] for m in self.sent if m.get("method") == "tools/call"]
        if self.era == "legacy":
            (hello,) = [m for m in self.sent if m.get("method") == "initialize"]
            assert hello["params"]["protocolVersion"] == self.version, hello
            replies = [m["result"] for m in self.sent if "result" in m]
            assert {"text": ANSWER, "type": "text"} in [
                r.get("content") for r in replies
            ]
            assert len(calls) == 1, f"{len(calls)} tools/call on the legacy era"
            return
        assert "server/discover" in methods, methods
        assert "initialize" not in methods, methods
        assert len(calls) == 2, f"{len(calls)} tools/call on the modern era, not 2"
        (answer,) = calls[1]["inputResponses"].values()
        assert (answer["content"]["text"], answer["model"]) == (ANSWER, MODEL)
        assert calls[1]["requestState"], "the retry carries no requestState"


if __name__ == "__main__":
    sys.exit(main(*(Path(argument) for argument in sys.argv[1:3])))
