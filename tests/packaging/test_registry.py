"""server.json, the MCP Registry entry: valid against the registry's schema (2025-12-11, vendored in
tests/packaging/), consistent with pyproject.toml, the README and the variables the server reads."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_NAME = "io.github.crm-mcp/unified-crm-mcp"
SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"


@pytest.fixture(scope="module")
def server_json() -> dict[str, Any]:
    return json.loads((ROOT / "server.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _pypi_package(server_json: dict[str, Any]) -> dict[str, Any]:
    [package] = [p for p in server_json["packages"] if p["registryType"] == "pypi"]
    return package


def test_server_json_is_valid_against_the_registry_schema(server_json: dict[str, Any]) -> None:
    schema = json.loads((ROOT / "tests" / "packaging" / "server.schema.json").read_text(encoding="utf-8"))
    assert schema["$id"] == SCHEMA_URL
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(server_json), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)
    assert server_json["$schema"] == SCHEMA_URL


def test_the_schema_check_catches_what_the_registry_rejects(server_json: dict[str, Any]) -> None:
    """The vendored schema really constrains server.json: the usual mistakes are errors."""
    schema = json.loads((ROOT / "tests" / "packaging" / "server.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    broken = json.loads(json.dumps(server_json))
    broken["packages"][0]["version"] = "latest"
    broken["description"] = "x" * 101
    broken["name"] = "unified-crm-mcp"
    del broken["packages"][0]["transport"]
    messages = [e.message for e in validator.iter_errors(broken)]
    assert len(messages) == 4, messages


def test_identity(server_json: dict[str, Any], project: dict[str, Any]) -> None:
    assert server_json["name"] == SERVER_NAME
    package = _pypi_package(server_json)
    assert package["identifier"] == project["name"] == "unified-crm-mcp"
    assert package["registryBaseUrl"] == "https://pypi.org"
    assert package["runtimeHint"] == "uvx"
    assert package["transport"] == {"type": "stdio"}
    assert server_json["repository"]["url"] == project["urls"]["Homepage"]


def test_versions_match_pyproject(server_json: dict[str, Any], project: dict[str, Any]) -> None:
    version = project["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)*", version), f"not an exact version: {version!r}"
    assert server_json["version"] == version, "server.json version differs from pyproject.toml [project] version"
    for package in server_json["packages"]:
        if package["registryType"] in ("mcpb", "oci"):
            # The registry rejects a version field on these: it is in the URL or the image tag.
            assert "version" not in package, package["identifier"]
            assert version in package["identifier"], package["identifier"]
            continue
        assert package.get("version") == version, (
            f"package {package['identifier']} has version {package.get('version')!r}"
        )


def test_readme_names_the_server_for_the_registry() -> None:
    """The registry checks ownership of the PyPI package through this line in its description (the README)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"mcp-name: {SERVER_NAME}" in readme, f"README.md lacks the line `mcp-name: {SERVER_NAME}`"


def test_environment_variables_match_what_the_server_reads(server_json: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in _pypi_package(server_json)["environmentVariables"]}
    config_source = (ROOT / "crm_mcp" / "config.py").read_text(encoding="utf-8")
    read_by_server = set(re.findall(r'get\("(APIDECK_[A-Z_]+)"\)', config_source))
    assert read_by_server == {
        "APIDECK_API_KEY", "APIDECK_APP_ID", "APIDECK_CONSUMER_ID", "APIDECK_SERVICE_ID", "APIDECK_BASE_URL"
    }
    assert set(variables) == read_by_server
    for name, variable in variables.items():
        assert variable.get("description"), f"{name} has no description"
        # Nothing is required: with no APIDECK_API_KEY the server runs the embedded sandbox.
        assert variable.get("isRequired") is False, name
        assert variable.get("isSecret") is (name == "APIDECK_API_KEY"), name
        # A default would be filled in by clients, and APIDECK_BASE_URL / APIDECK_APP_ID without an API
        # key is a configuration error; defaults belong in the descriptions.
        assert "default" not in variable and "value" not in variable, name


def test_uvx_can_run_the_package_by_its_name(server_json: dict[str, Any], project: dict[str, Any]) -> None:
    """Clients run a uvx package as `uvx <identifier>==<version>`, and uvx runs the executable named like the
    package; it does not fall back to another script."""
    assert _pypi_package(server_json)["identifier"] in project["scripts"]
