"""`python -m crm_mcp` is the same as the `crm-mcp` command."""

from crm_mcp.cli import main

raise SystemExit(main())
