"""The desktop bundle (.mcpb) that tools/build_bundle.py builds: reproducible (same sha256 twice, the
one server.json lists), its manifest valid for the official `mcpb` CLI, its user configuration as
Claude Desktop shows it, and the command the manifest gives actually serving MCP: the official
mcpb library turns the manifest into the command a host spawns, uv resolves the bundle's
pyproject.toml on this machine, and a real client session runs initialize, tools/list and a call.

Needs the mcpb CLI under .ci/mcpb (CI does it):
    npm install --prefix .ci/mcpb @anthropic-ai/mcpb@2.1.2
or MCPB_CLI=/path/to/mcpb. Without it the tests skip, unless CRM_MCP_REQUIRE_MCPB=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp_support import assert_serves_the_release

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
BUNDLE_NAME = f"unified-crm-mcp-{VERSION}.mcpb"
BUNDLE_URL = f"https://github.com/crm-mcp/unified-crm-mcp/releases/download/v{VERSION}/{BUNDLE_NAME}"
INSTALL_COMMAND = "npm install --prefix .ci/mcpb @anthropic-ai/mcpb@2.1.2"
MCPB_MODULES = ROOT / ".ci" / "mcpb" / "node_modules"
APIDECK_VARIABLES = ["APIDECK_API_KEY", "APIDECK_APP_ID", "APIDECK_CONSUMER_ID", "APIDECK_SERVICE_ID"]


def _find_mcpb() -> str | None:
    configured = os.environ.get("MCPB_CLI")
    if configured:
        return configured
    local = MCPB_MODULES / ".bin" / "mcpb"
    if local.exists() and shutil.which("node"):
        return str(local)
    return None


MCPB = _find_mcpb()
if MCPB is None:
    reason = f"mcpb CLI not installed; install it with `{INSTALL_COMMAND}` (needs Node.js and npm)"
    if os.environ.get("CRM_MCP_REQUIRE_MCPB") == "1":
        raise RuntimeError(reason)
    pytestmark = [pytest.mark.slow, pytest.mark.skip(reason=reason)]


def _clean_env() -> dict[str, str]:
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    return {k: v for k, v in os.environ.items() if not k.startswith("APIDECK_") and k not in drop}


def _run(args: list[str | Path], *, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], cwd=ROOT, env=_clean_env(), capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert result.returncode == 0, (
            f"{args} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def _build(out: Path) -> tuple[Path, str]:
    printed = _run([sys.executable, ROOT / "tools" / "build_bundle.py", "--out", out]).stdout.split()
    assert printed[0] == str(out / BUNDLE_NAME) and printed[1] == "sha256", printed
    return Path(printed[0]), printed[2]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return _build(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def unpacked(bundle: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle as the official CLI unpacks it (what a host installs)."""
    assert MCPB is not None
    target = tmp_path_factory.mktemp("unpacked")
    _run([MCPB, "unpack", bundle[0], target])
    return target


@pytest.fixture(scope="module")
def manifest(unpacked: Path) -> dict[str, Any]:
    return json.loads((unpacked / "manifest.json").read_text(encoding="utf-8"))


def _mcpb_package() -> dict[str, Any]:
    server = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
    [package] = [p for p in server["packages"] if p["registryType"] == "mcpb"]
    return package


def test_two_builds_are_byte_identical(bundle: tuple[Path, str], tmp_path: Path) -> None:
    again, digest = _build(tmp_path)
    assert digest == bundle[1]
    assert again.read_bytes() == bundle[0].read_bytes()


def test_bundle_entries_have_fixed_order_time_and_mode(bundle: tuple[Path, str]) -> None:
    with zipfile.ZipFile(bundle[0]) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["manifest.json", "pyproject.toml", "server/main.py"]
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0), info
        assert info.external_attr >> 16 == 0o100644, info
    # Nothing compiled or platform-bound: uv installs the dependencies on the user's machine.
    assert not [i.filename for i in infos if i.filename.endswith((".so", ".pyd", ".dylib", ".whl", ".pyc"))]


def test_server_json_lists_the_bundle_with_its_sha256(bundle: tuple[Path, str]) -> None:
    package = _mcpb_package()
    stale = "server.json is stale: run `python tools/build_bundle.py --update-server-json`"
    assert package["fileSha256"] == bundle[1], stale
    assert package["identifier"] == BUNDLE_URL
    assert package["transport"] == {"type": "stdio"}
    # The registry rejects these for mcpb packages: the version is in the URL.
    assert "version" not in package and "registryBaseUrl" not in package


def test_official_cli_validates_the_manifest(unpacked: Path, tmp_path: Path) -> None:
    assert MCPB is not None
    result = _run([MCPB, "validate", unpacked / "manifest.json"])
    assert "Manifest schema validation passes" in result.stdout, result.stdout
    # ... and is a real check: the same manifest with an unknown server type fails.
    broken = json.loads((unpacked / "manifest.json").read_text(encoding="utf-8"))
    broken["server"]["type"] = "conda"
    (tmp_path / "manifest.json").write_text(json.dumps(broken), encoding="utf-8")
    assert _run([MCPB, "validate", tmp_path / "manifest.json"], check=False).returncode != 0


def test_manifest_runs_the_pinned_package_with_uv(manifest: dict[str, Any], unpacked: Path) -> None:
    assert manifest["manifest_version"] == "0.4"  # the first with the uv server type
    assert manifest["version"] == VERSION
    assert manifest["server"]["type"] == "uv"
    assert (unpacked / manifest["server"]["entry_point"]).is_file()
    project = tomllib.loads((unpacked / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["dependencies"] == [f"unified-crm-mcp=={VERSION}"]
    assert set(manifest["compatibility"]["platforms"]) >= {"darwin", "win32"}


def test_user_configuration(manifest: dict[str, Any]) -> None:
    config = manifest["user_config"]
    assert set(config) == {"apideck_api_key", "apideck_app_id", "apideck_consumer_id", "apideck_service_id"}
    assert config["apideck_api_key"]["sensitive"] is True
    assert [k for k, v in config.items() if v.get("sensitive")] == ["apideck_api_key"]
    for key, option in config.items():
        assert option["type"] == "string", key
        assert option["required"] is False, key  # all empty: the embedded sandbox
        assert option["default"] == "", key
    env = manifest["server"]["mcp_config"]["env"]
    assert env == {name: "${user_config." + name.lower() + "}" for name in APIDECK_VARIABLES}


def host_config(manifest: dict[str, Any], directory: Path, user_config: dict[str, str]) -> dict[str, Any]:
    """The command, arguments and environment a host spawns, computed by the official mcpb library
    (getMcpConfigForManifest, the code Claude Desktop uses)."""
    script = (
        "const [lib, manifest, dir, user] = process.argv.slice(1);"
        "const { getMcpConfigForManifest } = await import(lib);"
        "const config = await getMcpConfigForManifest({manifest: JSON.parse(manifest), extensionPath: dir,"
        " systemDirs: {}, userConfig: JSON.parse(user), pathSeparator: '/'});"
        "console.log(JSON.stringify(config ?? null));"
    )
    library = (MCPB_MODULES / "@anthropic-ai" / "mcpb" / "dist" / "index.js").as_uri()
    out = _run(["node", "--input-type=module", "-e", script, library, json.dumps(manifest), directory,
                json.dumps(user_config)]).stdout
    config = json.loads(out)
    assert isinstance(config, dict), out
    return config


def test_host_passes_the_user_configuration_as_apideck_variables(manifest: dict[str, Any], unpacked: Path) -> None:
    empty = host_config(manifest, unpacked, {})
    assert empty["env"] == dict.fromkeys(APIDECK_VARIABLES, "")  # empty means unset: the sandbox
    given = host_config(manifest, unpacked, {
        "apideck_api_key": "key-1", "apideck_app_id": "app-1", "apideck_consumer_id": "c-1",
    })
    assert given["env"] == {
        "APIDECK_API_KEY": "key-1", "APIDECK_APP_ID": "app-1", "APIDECK_CONSUMER_ID": "c-1", "APIDECK_SERVICE_ID": "",
    }
    assert given["command"] == "uv"
    assert given["args"] == ["run", "--directory", str(unpacked), manifest["server"]["entry_point"]]


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "-q", "-w", out], timeout=300)
    return out


@pytest.mark.anyio
async def test_the_bundle_serves_mcp_the_way_a_host_starts_it(
    manifest: dict[str, Any], unpacked: Path, wheel_dir: Path, tmp_path: Path
) -> None:
    """What Claude Desktop does after installing the bundle with the Apideck fields left empty.
    `unified-crm-mcp` is not on PyPI yet, so uv finds it as the wheel built from this tree
    (UV_FIND_LINKS); everything else it resolves from PyPI for this platform, as on a user's machine."""
    directory = tmp_path / "extension"
    shutil.copytree(unpacked, directory)
    config = host_config(manifest, directory, {})
    uv = shutil.which(config["command"], path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    assert uv, f"{config['command']} not found (it comes with the dev extra)"
    env = {
        **_clean_env(),
        **config["env"],
        "UV_FIND_LINKS": str(wheel_dir),
        "UV_PYTHON": sys.executable,  # no interpreter download in CI
        "CRM_MCP_SANDBOX_DB": ":memory:",
    }
    params = StdioServerParameters(command=uv, args=config["args"], env=env, cwd=tmp_path)
    async with Client(params) as client:
        await assert_serves_the_release(client, VERSION)
    # uv installed the pinned release into the extension's own environment.
    assert (directory / ".venv").is_dir()
