"""OAuth 2.1 for HTTP mode: this server as a resource server, as the MCP authorization spec has it.

- `guard`: the ASGI middleware (protected resource metadata, 401/403 challenges, per-call scopes);
- `tokens`: access token validation (JWT against the published keys, or introspection);
- `authorization_server`: metadata, key set and introspection requests to the authorization server;
- `scopes`: which scope each tool needs, and what a token may see and call.

Turned on by CRM_MCP_OAUTH_ISSUER and CRM_MCP_OAUTH_RESOURCE (`crm_mcp.config.OAuthSettings`).
Nothing is imported here: stdio start-up loads only `scopes` (the server's hooks).
"""
