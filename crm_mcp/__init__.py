"""crm-mcp: an MCP server for the Apideck CRM unified API, with an embedded sandbox CRM."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("unified-crm-mcp")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
