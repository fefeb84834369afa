"""podman as `nox -s image` runs it here, and local stand-ins for the registry's images.

These machines reach PyPI, npm and Debian's archive, not Docker Hub or GHCR, and run no
Docker engine. Debian's podman builds and runs a generated project's Dockerfile as it
is, once the images it starts from exist locally under the names it uses:

- `python:X.Y-slim-SUITE` (Docker Hub): Debian SUITE made by mmdebstrap with
  `python3`, `python-is-python3` and `ca-certificates`, imported with the python
  image's PATH and LANG. One difference: its python is Debian's, at /usr/bin/python3
  (trixie: 3.13), where the real image has its own build at /usr/local/bin/python3.
  The Dockerfile names neither path: uv builds the venv with the `python3` on PATH
  (`UV_PYTHON=python3`), so the same Dockerfile builds on both. The stand-in is also
  larger than the real slim image (about 164 MB against 120 MB): image sizes printed
  here are the stand-in's.
- `ghcr.io/astral-sh/uv:X.Y.Z`: an image holding only `/uv`, the binary of the `uv`
  X.Y.Z wheel from PyPI (the same release the real image carries).

A stand-in is made once and kept in podman's own storage, as a registry would keep
the real one: `podman image exists` is asked first. To start from cold, remove them
(`podman rmi docker.io/library/python:3.13-slim-trixie ghcr.io/astral-sh/uv:0.13.9`).

podman runs with tests/image/containers.conf (runc, cgroupfs, no default ulimits: its
defaults fail in these sandboxes) and builds with `--isolation chroot`. The build
reaches PyPI through this machine's CA bundle: /etc/ssl/certs is mounted into each
build step, with a uv.toml saying `native-tls = true` (BUILD_MOUNTS); on a machine
with a Docker engine, `docker build .` needs neither.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTAINERS_CONF = HERE / "containers.conf"
INSTALL_HINT = "apt-get install podman runc mmdebstrap (.ci/run installs them)"
# What the real python images set (docker-library/python), besides their own python.
PYTHON_IMAGE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
PYTHON_IMAGE = re.compile(r"docker\.io/library/python:(\d+\.\d+)-slim-(\w+)")
UV_IMAGE = re.compile(r"ghcr\.io/astral-sh/uv:(\d+\.\d+\.\d+)")


class PodmanError(Exception):
    """A podman command failed; the message is one line."""


def podman(
    *args: str, timeout: float = 120, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `podman ARGS` with this directory's containers.conf."""
    if shutil.which("podman") is None:
        raise PodmanError(f"podman not found: {INSTALL_HINT}")
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    try:
        completed = subprocess.run(
            ["podman", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PodmanError(f"podman {args[0]}: no answer within {timeout:g} s") from None
    if check and completed.returncode != 0:
        raise PodmanError(f"podman {args[0]}: {last_line(completed.stderr)}")
    return completed


def run(command: list[str], timeout: float) -> None:
    """Run a command that makes a stand-in; PodmanError, in one line, if it fails."""
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise PodmanError(f"{command[0]} {command[1]}: {last_line(done.stderr)}")


def last_line(text: str) -> str:
    """The last line that says something (podman's own errors come last), or ''."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("Error", "error"))]
    return (errors or lines or [""])[-1]


def qualified(image: str) -> str:
    """The name podman stores an image under: `python:3.13` is Docker Hub's.

    >>> qualified("python:3.13-slim-trixie")
    'docker.io/library/python:3.13-slim-trixie'
    >>> qualified("ghcr.io/astral-sh/uv:0.13.9")
    'ghcr.io/astral-sh/uv:0.13.9'
    """
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if rest else f"docker.io/library/{image}"


def base_images(dockerfile: Path) -> list[str]:
    """The images a Dockerfile starts from or copies from, stages left out.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder, "Dockerfile")
    ...     _ = path.write_text(
    ...         "FROM python:3.13-slim-trixie AS build\\n"
    ...         "COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /bin/uv\\n"
    ...         "FROM python:3.13-slim-trixie\\nCOPY --from=build /app /app\\n"
    ...     )
    ...     base_images(path)
    ['docker.io/library/python:3.13-slim-trixie', 'ghcr.io/astral-sh/uv:0.13.9']
    """
    text = dockerfile.read_text(encoding="utf-8")
    stages = set(re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", text))
    named = re.findall(r"(?im)^FROM\s+(\S+)|^COPY\s+--from=(\S+)", text)
    images = [qualified(a or b) for a, b in named if (a or b) not in stages]
    return list(dict.fromkeys(images))


def ensure_stand_ins(dockerfile: Path, scratch: Path) -> list[str]:
    """Make the stand-in of each image the Dockerfile needs and podman lacks.

    Returns a line per image: made (and how long it took) or already there.
    """
    report = []
    for image in base_images(dockerfile):
        if podman("image", "exists", image, check=False).returncode == 0:
            report.append(f"{image}: cached")
            continue
        started = time.monotonic()
        if match := PYTHON_IMAGE.fullmatch(image):
            python = python_stand_in(image, suite=match.group(2), scratch=scratch)
            made = f"Debian {match.group(2)}'s {python}"
        elif match := UV_IMAGE.fullmatch(image):
            uv_stand_in(image, version=match.group(1), scratch=scratch)
            made = f"uv {match.group(1)} from PyPI"
        else:
            raise PodmanError(f"no stand-in for {image}: only python and uv images")
        report.append(f"{image}: made ({made}) in {time.monotonic() - started:.1f} s")
    return report


def python_stand_in(image: str, suite: str, scratch: Path) -> str:
    """Debian `suite` with its python3, imported as `image`; the python's version."""
    if shutil.which("mmdebstrap") is None:
        raise PodmanError(f"mmdebstrap not found: {INSTALL_HINT}")
    tarball = scratch / f"{suite}.tar"
    packages = "python3,python-is-python3,ca-certificates"
    command = ["mmdebstrap", "--variant=minbase", f"--include={packages}"]
    run([*command, "--mode=root", "--quiet", suite, str(tarball)], timeout=600)
    changes = [
        f"--change=ENV {name}={value}" for name, value in PYTHON_IMAGE_ENV.items()
    ]
    podman(
        "import", "--quiet", *changes, '--change=CMD ["python3"]', str(tarball), image
    )
    tarball.unlink()
    version = podman("run", "--rm", image, "python3", "--version").stdout.strip()
    return f"{version} at /usr/bin/python3"


def uv_stand_in(image: str, version: str, scratch: Path) -> None:
    """An image of the uv `version` binary alone, at /uv, tagged `image`."""
    context = scratch / f"uv-{version}"
    target = ["--target", str(context / "wheel")]
    run(["uv", "pip", "install", "--quiet", *target, f"uv=={version}"], timeout=300)
    shutil.copy2(context / "wheel" / "bin" / "uv", context / "uv")
    (context / "Containerfile").write_text("FROM scratch\nCOPY uv /uv\n")
    podman("build", "--quiet", "--isolation=chroot", "--tag", image, str(context))
    shutil.rmtree(context)
