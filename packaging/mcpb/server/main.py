"""The desktop bundle's entry point: the crm-mcp server over stdio.

`uv run` installs the `unified-crm-mcp` version this bundle's pyproject.toml pins (with wheels
for the user's own platform), then runs this file; the Apideck settings arrive as APIDECK_*
variables from the bundle's user configuration, empty ones meaning the embedded sandbox.
"""

import sys

from crm_mcp.cli import main

sys.exit(main(["serve"]))
