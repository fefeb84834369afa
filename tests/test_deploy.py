"""What a generated project ships for deployment, checked by what it does.

- `deploy/compose.yaml` resolves (podman-compose config) to three replicas behind
  HAProxy with deploy/haproxy.cfg, sharing one state key from a secret and one
  PostgreSQL (the council's debates too, when it is in); it follows the Compose
  Specification's schema; and its
  replica entry point does turn each secret file into the variable it is named after.
- `.github/dependabot.yml` follows Dependabot's schema and points each ecosystem at a
  folder that holds what that ecosystem updates.
- CI's `uv lock --check` fails on a missing or stale lock, and passes on a fresh one.

The image itself is built and run by `nox -s image` (tests/image/check_image.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from docs_commands import run_doc_command
from render import SAMPLE_ANSWERS, example_choices, render
from session_tools import session_tool

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT_NAME = str(SAMPLE_ANSWERS["project_name"])
ALLOWED_HOSTS = "mcp.example.com"


@pytest.fixture(scope="module", params=["every-pattern", "no-council"])
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A project with the council (its debates in the shared PostgreSQL) and one
    without."""
    examples = example_choices()
    if request.param == "no-council":
        examples = [name for name in examples if name != "council"]
    project = tmp_path_factory.mktemp(request.param) / "project"
    render(project, {**SAMPLE_ANSWERS, "examples": examples})
    return project


def has_council(project: Path) -> bool:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return "council" in answers["examples"]


def compose_config(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [session_tool("podman-compose"), "-f", "deploy/compose.yaml", "config"],
        cwd=project,
        env={
            **{k: v for k, v in os.environ.items() if k != "MCP_HTTP_ALLOWED_HOSTS"},
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_compose_file_runs_three_replicas_behind_haproxy_on_shared_secrets(
    project: Path,
) -> None:
    run_doc_command(project, "secrets")  # as docs/deployment.md says, once
    resolved = compose_config(project, MCP_HTTP_ALLOWED_HOSTS=ALLOWED_HOSTS)
    assert resolved.returncode == 0, resolved.stderr
    config = yaml.safe_load(resolved.stdout)
    services = config["services"]

    # Every declared secret is a file the docs' command made: distinct random keys.
    secret_files = {
        name: (project / "deploy" / spec["file"]).resolve()
        for name, spec in config["secrets"].items()
    }
    keys = [path.read_text().strip() for path in secret_files.values()]
    assert all(re.fullmatch(r"[0-9a-f]{64}", key) for key in keys)
    assert len(set(keys)) == len(keys)

    replicas = sorted(name for name in services if name.startswith("replica-"))
    assert replicas == ["replica-1", "replica-2", "replica-3"]
    homes = set()
    for name in replicas:
        replica = services[name]
        assert replica["image"] == PROJECT_NAME
        assert replica["read_only"] is True
        [home] = replica["volumes"]
        assert home.endswith(":/app/home")
        homes.add(home.split(":")[0])
        secrets = {secret["target"]: secret["source"] for secret in replica["secrets"]}
        # The same key in every replica: any of them serves any modern round.
        expected = {
            "MCP_HTTP_TOKEN": "http_token",
            "MCP_REQUEST_STATE_KEY": "request_state_key",
            "PGPASSWORD": "postgres_password",
        }
        # One PostgreSQL every replica shares: per-user limits, and debates.
        shared = "postgresql://mcp@postgres:5432/mcp"
        assert replica["environment"]["MCP_DB_URL"] == shared
        if has_council(project):
            assert replica["environment"]["COUNCIL_DB_URL"] == shared
        else:
            assert "COUNCIL_DB_URL" not in replica["environment"]
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert secrets == expected
        assert replica["environment"]["MCP_HTTP_ALLOWED_HOSTS"] == ALLOWED_HOSTS
        assert replica["entrypoint"][-1].endswith(f"; exec {PROJECT_NAME}")
    assert len(homes) == 3, "each replica has a home of its own"

    # HAProxy runs the project's own deploy/haproxy.cfg, every variable it reads set.
    haproxy = services["haproxy"]
    [mount] = haproxy["volumes"]
    source, target, _mode = mount.split(":")
    haproxy_cfg = project / "deploy" / "haproxy.cfg"
    assert (project / "deploy" / source).resolve() == haproxy_cfg.resolve()
    assert target == "/usr/local/etc/haproxy/haproxy.cfg"
    used = set(re.findall(r"\$\{(\w+)\}", haproxy_cfg.read_text()))
    assert used <= set(haproxy["environment"])
    port = re.search(r"(?m)^EXPOSE (\d+)$", (project / "Dockerfile").read_text())
    assert port
    assert {haproxy["environment"][f"MCP_REPLICA_{n}"] for n in (1, 2, 3)} == {
        f"{name}:{port.group(1)}" for name in replicas
    }

    postgres = services["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == (
        "/run/secrets/postgres_password"
    )
    assert postgres["secrets"] == ["postgres_password"]
    assert postgres["environment"]["POSTGRES_USER"] == "mcp"


def test_the_replica_entry_point_turns_each_secret_into_its_variable(
    project: Path, tmp_path: Path
) -> None:
    """The shell line of the replicas' entry point, as compose hands it to the
    container, with the secrets folder and the server swapped for a scratch folder
    and `env`."""
    config = yaml.safe_load(
        compose_config(project, MCP_HTTP_ALLOWED_HOSTS=ALLOWED_HOSTS).stdout
    )
    shell, flag, line = config["services"]["replica-1"]["entrypoint"]
    assert (shell, flag) == ("/bin/sh", "-c")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "MCP_HTTP_TOKEN").write_text("token-from-a-file\n")
    (secrets / "MCP_REQUEST_STATE_KEY").write_text("key with spaces")
    line = line.replace("/run/secrets/", f"{secrets}/")
    assert line.endswith(f"exec {PROJECT_NAME}")
    line = line.removesuffix(PROJECT_NAME) + "env"

    shown = subprocess.run(
        [shell, flag, line], capture_output=True, text=True, check=True, env={}
    )

    variables = dict(row.split("=", 1) for row in shown.stdout.splitlines())
    assert variables["MCP_HTTP_TOKEN"] == "token-from-a-file"
    assert variables["MCP_REQUEST_STATE_KEY"] == "key with spaces"


def test_the_compose_file_will_not_start_without_the_allowed_hosts(
    project: Path,
) -> None:
    """Control: the replicas listen beyond loopback, so they need the names."""
    resolved = compose_config(project)

    assert resolved.returncode != 0
    assert "MCP_HTTP_ALLOWED_HOSTS" in resolved.stderr
    assert "the names clients reach the server by" in resolved.stderr


def test_the_compose_file_follows_the_compose_specification(project: Path) -> None:
    schema = json.loads((FIXTURES / "compose-spec.json").read_text())
    compose = yaml.safe_load((project / "deploy" / "compose.yaml").read_text())

    validator = jsonschema.Draft7Validator(schema)  # the schema's own draft
    validator.validate(compose)

    # Control: a misspelt key is caught.
    compose["services"]["haproxy"]["read_onyl"] = True
    with pytest.raises(jsonschema.ValidationError, match="read_onyl"):
        validator.validate(compose)


def test_dependabot_updates_what_the_project_has(project: Path) -> None:
    schema = json.loads((FIXTURES / "dependabot-2.0.json").read_text())
    config = yaml.safe_load((project / ".github" / "dependabot.yml").read_text())
    validator = jsonschema.Draft7Validator(schema)  # the schema's own draft
    validator.validate(config)

    # Each ecosystem looks where its files are.
    manifests = {
        "uv": ["pyproject.toml"],
        "github-actions": [".github/workflows/ci.yml"],
        "docker": ["Dockerfile"],
        "docker-compose": ["compose.yaml"],
    }
    updates = {u["package-ecosystem"]: u["directory"] for u in config["updates"]}
    assert set(updates) == set(manifests)
    for ecosystem, directory in updates.items():
        folder = project / directory.lstrip("/")
        for manifest in manifests[ecosystem]:
            assert (folder / manifest).is_file(), f"{ecosystem}: no {manifest}"

    # Control: an ecosystem Dependabot does not know is refused.
    config["updates"][0]["package-ecosystem"] = "poetry"
    with pytest.raises(jsonschema.ValidationError, match="poetry"):
        validator.validate(config)


def test_ci_fails_on_a_missing_or_stale_lock_and_passes_on_a_fresh_one(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    render(project, {**SAMPLE_ANSWERS, "examples": ["summarizer"]})
    ci = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())
    [check] = [
        step["run"]
        for job in ci["jobs"].values()
        for step in job["steps"]
        if "uv lock" in step.get("run", "")
    ]
    assert check == "uv lock --check"

    def run_check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", check],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )

    missing = run_check()
    run_doc_command(project, "lock", timeout=300)
    fresh = run_check()
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"anyio>=4.5",', '"anyio>=4.6",')
    )
    stale = run_check()

    assert missing.returncode != 0
    assert "Unable to find lockfile" in missing.stderr
    assert fresh.returncode == 0, fresh.stderr
    assert stale.returncode != 0
    assert "needs to be updated" in stale.stderr


def test_ci_builds_the_image_and_runs_the_shipped_smoke_check(project: Path) -> None:
    ci = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())
    runs = [step.get("run", "") for step in ci["jobs"]["image"]["steps"]]
    script = "scripts/smoke_check.py"
    assert (project / script).is_file()
    assert any(run.startswith(f"docker build -t {PROJECT_NAME}:ci .") for run in runs)
    [smoke] = [run for run in runs if script in run]
    assert smoke.startswith(f"python3 {script} http://127.0.0.1:8000")
