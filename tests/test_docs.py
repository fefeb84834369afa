"""What the docs promise, checked here rather than in the generated projects.

A generated project's README and docs are its owner's to rewrite, so its own suite
never reads them. What must match the code is checked on a rendered project instead:
the client snippets of docs/clients.md start this server with settings it accepts, the
README's map names every module of the core, and its links lead somewhere. The
configuration page needs no check: the docs build makes it from the settings classes
(`nox -s docs`).
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from render import REPO_ROOT, SAMPLE_ANSWERS, example_choices, render

MAX_README_LINES = 200
PROJECT_NAME = str(SAMPLE_ANSWERS["project_name"])
PACKAGE = PROJECT_NAME.replace("-", "_")
CLIENTS = ["VS Code", "Cursor", "Claude Desktop", "Claude Code", "goose", "fast-agent"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with every pattern: the longest README, every page."""
    project = tmp_path_factory.mktemp("docs") / "project"
    render(project, {**SAMPLE_ANSWERS, "examples": example_choices()})
    return project


def test_the_readmes_are_front_pages(project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    render(empty, {**SAMPLE_ANSWERS, "examples": []})
    lengths = {
        "README.md": line_count(REPO_ROOT / "README.md"),
        "a project's README.md, every pattern": line_count(project / "README.md"),
        "a project's README.md, no pattern": line_count(empty / "README.md"),
    }
    too_long = {name: n for name, n in lengths.items() if n > MAX_README_LINES}
    assert not too_long, (
        f"a README is a front page of at most {MAX_README_LINES} lines; move the "
        f"rest into docs/: {too_long}"
    )


def test_the_readme_map_names_every_module_of_the_core(project: Path) -> None:
    readme = (project / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Where things are\n")[1].split("\n## ")[0]
    core = project / "src" / PACKAGE / "core"
    unnamed = sorted(
        module.name
        for module in core.glob("*.py")
        if not re.search(rf"^ +{re.escape(module.name)} ", section, re.MULTILINE)
    )
    assert not unnamed, f"template/README.md.jinja's map leaves out {unnamed}"


@pytest.mark.parametrize("readme", ["template", "project"])
def test_readme_links_lead_to_files_and_headings(project: Path, readme: str) -> None:
    """README links are relative file links, so they work on GitHub as in the site."""
    root = REPO_ROOT if readme == "template" else project
    text = (root / "README.md").read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        file = root / path
        if not file.exists() or (anchor and anchor not in heading_ids(file)):
            broken.append(target)
    assert not broken, f"{readme} README.md links to nothing: {broken}"


def test_client_snippets_start_this_project(project: Path) -> None:
    """Each client's first entry runs this folder, its second the published package."""
    extras = json.loads(
        run_in_project(
            project,
            "import json, importlib.metadata as m\n"
            f"print(json.dumps(m.metadata({PROJECT_NAME!r}).get_all('Provides-Extra')))",
        )
    )
    readme = (project / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Connect a client\n")[1].split("\n## ")[0]
    (snippet,) = re.findall(r"```json\n(.*?)```", section, re.DOTALL)
    assert json.loads(snippet) == {
        "command": "uv",
        "args": ["run", "--directory", str(project.resolve()), PROJECT_NAME],
    }
    servers = [s for s in configured_servers(project) if "command" in s]
    from_source = [s for s in servers if s["command"] == "uv"]
    published = [s for s in servers if s["command"] == "uvx"]
    assert len(from_source) == len(published) == len(CLIENTS), servers
    assert len(servers) == 2 * len(CLIENTS), "a uv or uvx command in each"
    for server in servers:
        extra = server["env"].get("MCP_SAMPLING_PROVIDER")
        assert extra is None or extra in extras, f"no extra {extra!r}: {server}"
        if server["command"] == "uv":
            start = ["run", "--directory", str(project.resolve())]
            assert server["args"][:3] == start, server
            rest = [PROJECT_NAME] if extra is None else ["--extra", extra, PROJECT_NAME]
            assert server["args"][3:] == rest, server
        else:
            from_ = [] if extra is None else ["--from", f"{PROJECT_NAME}[{extra}]"]
            assert server["args"] == [*from_, PROJECT_NAME], server


def test_client_snippets_configure_settings_the_server_accepts(project: Path) -> None:
    environments = [s["env"] for s in configured_servers(project) if "command" in s]
    # Loaded by the project's own code: each refused one raises, naming the variable.
    script = (
        "import json, os, sys\n"
        f"from {PACKAGE}.core import load_settings\n"
        f"from {PACKAGE}.server import settings_classes\n"
        "for env in json.loads(sys.argv[1]):\n"
        "    for name in [n for n in os.environ if n.startswith('MCP_')]:\n"
        "        del os.environ[name]\n"
        "    os.environ.update(env)\n"
        "    load_settings(settings_classes())\n"
    )
    run_in_project(project, script, json.dumps(environments))


def test_the_http_snippet_sends_the_token_it_asks_for(project: Path) -> None:
    (server,) = [s for s in configured_servers(project) if "url" in s]
    assert server["url"] == "http://127.0.0.1:8000/mcp"
    inputs = {entry["id"]: entry for entry in server["inputs"]}
    (token_input,) = re.findall(
        r"^Bearer \$\{input:(.+)\}$", server["headers"]["Authorization"]
    )
    assert inputs[token_input]["password"] is True
    assert "MCP_HTTP_TOKEN" in inputs[token_input]["description"]


def configured_servers(project: Path) -> list[dict[str, Any]]:
    """Every server docs/clients.md configures, in one shape, in the page's order."""
    page = (project / "docs" / "clients.md").read_text(encoding="utf-8")
    servers: list[dict[str, Any]] = []
    for language, block in re.findall(
        r"```(json|yaml|bash)\n(.*?)```", page, re.DOTALL
    ):
        if language == "json":
            document = json.loads(block)
            entries = document.get("servers") or document.get("mcpServers")
            servers += [
                {"inputs": document.get("inputs", []), "env": {}, **entry}
                for entry in entries.values()
            ]
        elif language == "yaml":
            document = yaml.safe_load(block)
            goose = document.get("extensions", {}).values()
            fast_agent = document.get("mcp", {}).get("servers", {}).values()
            servers += [
                {
                    "command": e.get("cmd", e.get("command")),
                    "args": e["args"],
                    "env": {},
                }
                for e in [*goose, *fast_agent]
            ]
        else:
            words = shlex.split(block)
            assert words[:3] == ["claude", "mcp", "add"], block
            dash = words.index("--")
            options, command = words[3:dash], words[dash + 1 :]
            env = [v for flag, v in itertools.pairwise(options) if flag == "--env"]
            servers.append(
                {
                    "command": command[0],
                    "args": command[1:],
                    "env": dict(pair.split("=", 1) for pair in env),
                }
            )
    return servers


def heading_ids(markdown: Path) -> set[str]:
    """The anchors of a page's headings, as MkDocs and GitHub make them."""
    headings = re.findall(
        r"^#+ (.+)$", markdown.read_text(encoding="utf-8"), re.MULTILINE
    )
    return {
        re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", heading).strip().lower())
        for heading in headings
    }


def run_in_project(project: Path, script: str, *args: str) -> str:
    """Run `python -c script` with the project installed, as a client would run it
    (`uv run --directory`); its stdout."""
    completed = subprocess.run(
        [
            "uv",
            "run",
            "--no-dev",
            "--directory",
            str(project),
            "python",
            "-c",
            script,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())
