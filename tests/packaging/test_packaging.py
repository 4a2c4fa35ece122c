"""The built wheel, installed into a fresh virtual environment: it carries its data files, the
`crm-mcp` command works, and a real stdio session runs from the installed package alone (not from
this source tree). The install is lean: only what serving needs, without the optional tokenizer
(`unified-crm-mcp[tokens]`), whose absence `crm-mcp tools` explains."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
VERSION = PROJECT["version"]
DATA_FILES = [
    "crm_mcp/spec/apideck-crm-openapi.yml",
    "crm_mcp/generated/models.py",
    "crm_mcp/generated/operations.py",
    "crm_mcp/generated/tools.json",
]
BIN = "Scripts" if sys.platform == "win32" else "bin"
EXE = ".exe" if sys.platform == "win32" else ""


def _clean_env() -> dict[str, str]:
    """The caller's environment without Apideck credentials or anything that would let the installed
    package import this source tree instead of itself."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    return {k: v for k, v in os.environ.items() if not k.startswith("APIDECK_") and k not in drop}


def _run(
    args: list[str | Path], *, cwd: Path, timeout: float = 60, env: dict[str, str] | None = None, status: int = 0
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env={**_clean_env(), **(env or {})}, capture_output=True, text=True,
        timeout=timeout,
    )
    assert result.returncode == status, (
        f"{args} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "-q", "-w", out], cwd=out, timeout=300)
    [built] = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain new virtual environment (no system site-packages) with only the wheel and its dependencies."""
    root = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", root], cwd=root, timeout=120)
    python = root / BIN / f"python{EXE}"
    _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel], cwd=root, timeout=600)
    return root


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Run installed commands away from the source tree, so `python -m crm_mcp` cannot pick it up."""
    return tmp_path


def test_wheel_carries_the_contract_and_the_generated_code(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for path in DATA_FILES:
            assert path in names, f"{wheel.name} lacks {path}"
            assert archive.getinfo(path).file_size > 0, f"{path} is empty in {wheel.name}"
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert not [n for n in names if n.startswith(("tests/", "tools/"))]
        [metadata_name] = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode("utf-8"))
        [entry_points_name] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = archive.read(entry_points_name).decode("utf-8")
    assert metadata["Name"] == PROJECT["name"]
    assert metadata["Version"] == VERSION
    assert "crm-mcp = crm_mcp.cli:main" in entry_points
    # The registry reads `mcp-name:` from the PyPI description, which is the README.
    assert "mcp-name: io.github.crm-mcp/unified-crm-mcp" in (metadata.get_payload() or "")


def test_installed_package_is_the_wheel_not_the_source_tree(venv: Path, workdir: Path) -> None:
    out = _run([venv / BIN / f"python{EXE}", "-c", "import crm_mcp; print(crm_mcp.__file__)"], cwd=workdir)
    location = Path(out.stdout.strip()).resolve()
    assert location.is_relative_to(venv.resolve()), location
    assert not location.is_relative_to(ROOT / "crm_mcp"), location


def test_crm_mcp_version(venv: Path, workdir: Path) -> None:
    out = _run([venv / BIN / f"crm-mcp{EXE}", "--version"], cwd=workdir)
    assert out.stdout.strip() == f"crm-mcp {VERSION}"


def test_crm_mcp_help(venv: Path, workdir: Path) -> None:
    out = _run([venv / BIN / f"crm-mcp{EXE}", "--help"], cwd=workdir)
    assert out.stdout.startswith("usage: crm-mcp")
    for command in ("serve", "sandbox", "tools", "call"):
        assert command in out.stdout


def test_python_m_crm_mcp_version(venv: Path, workdir: Path) -> None:
    out = _run([venv / BIN / f"python{EXE}", "-m", "crm_mcp", "--version"], cwd=workdir)
    assert out.stdout.strip() == f"crm-mcp {VERSION}"


def test_the_tokenizer_is_an_extra_not_a_dependency(wheel: Path, venv: Path, workdir: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        [metadata_name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode("utf-8"))
    requires = metadata.get_all("Requires-Dist") or []
    tokenizer = [r for r in requires if r.startswith("bpe-openai")]
    assert "bpe-openai>=0.1.4; extra == 'tokens'" in tokenizer
    assert all("; extra == " in r for r in tokenizer), tokenizer  # never unconditional
    assert not [r for r in requires if r.startswith("pydantic-settings")]  # nothing of ours imports it
    _run([venv / BIN / f"python{EXE}", "-c", "import bpe_openai"], cwd=workdir, status=1)


def test_crm_mcp_tools_without_the_tokenizer_says_how_to_get_it(venv: Path, workdir: Path) -> None:
    out = _run([venv / BIN / f"crm-mcp{EXE}", "tools"], cwd=workdir, status=1)
    assert out.stdout == ""
    assert out.stderr.strip() == (
        "crm-mcp tools: counting tokens needs the optional bpe-openai tokenizer, which is not installed: "
        "pip install 'unified-crm-mcp[tokens]'"
    )


def test_a_tool_call_on_the_sandbox_from_the_lean_install(venv: Path, workdir: Path) -> None:
    out = _run(
        [venv / BIN / f"crm-mcp{EXE}", "call", "list_users", '{"limit": 2}'],
        cwd=workdir, env={"CRM_MCP_SANDBOX_DB": ":memory:"},
    )
    assert len(set(re.findall(r"usr_\w+", out.stdout))) == 2, out.stdout


def _site_packages_bytes(root: Path) -> int:
    query = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([root / BIN / f"python{EXE}", "-c", query], cwd=root).stdout.strip())
    return sum(f.stat().st_size for f in site.rglob("*") if f.is_file() and not f.is_symlink())


def test_the_install_stays_lean(venv: Path, tmp_path: Path) -> None:
    """What the wheel adds to a bare virtualenv (the README states it, 63 MB). The tokenizer
    alone is 75 MB; this bound catches it, or another heavy dependency, coming back."""
    bare = tmp_path / "bare"
    _run([sys.executable, "-m", "venv", bare], cwd=tmp_path, timeout=120)
    added = _site_packages_bytes(venv) - _site_packages_bytes(bare)
    assert added < 70_000_000, f"the install adds {added / 1e6:.1f} MB"



@pytest.fixture
def stdio_session(venv: Path, workdir: Path) -> Iterator[StdioServerParameters]:
    yield StdioServerParameters(
        command=str(venv / BIN / f"crm-mcp{EXE}"),
        args=[],
        env={**_clean_env(), "CRM_MCP_SANDBOX_DB": ":memory:"},
        cwd=workdir,
    )


@pytest.mark.anyio
async def test_stdio_session_from_the_installed_command(stdio_session: StdioServerParameters) -> None:
    """What a desktop client does after `pip install unified-crm-mcp`: start `crm-mcp` with no credentials."""
    async with Client(stdio_session) as client:
        tools = (await client.list_tools()).tools
        result = await client.call_tool("list_users", {"limit": 2})
    # Checked after the session closes, so that a failure reads as itself rather than a task-group error.
    assert len(tools) == 56  # 50 operations + 3 workflow tools + 3 journal tools
    assert "list_users" in {t.name for t in tools}
    text = "\n".join(getattr(block, "text", "") for block in result.content)
    assert not result.is_error, text
    assert text.count("usr_") >= 2, text
