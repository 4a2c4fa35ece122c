# crm-mcp over streamable HTTP on port 8000, as a non-root user.
#   docker build -t unified-crm-mcp .
#   docker run -p 8000:8000 -e CRM_MCP_HTTP_TOKEN=<secret> -e APIDECK_API_KEY=... unified-crm-mcp
# Clients send `Authorization: Bearer <secret>` to http://<host>:8000/mcp; without APIDECK_API_KEY
# the server runs the embedded sandbox CRM. The install and start steps are exercised by
# tests/packaging/test_container.py (in a fresh venv as a non-root user).

# Build stage: the package and its dependencies in a virtualenv; the sources and the build
# tools stay here.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY crm_mcp ./crm_mcp
# The postgres extra: replicas share the write journal through CRM_MCP_JOURNAL_DATABASE_URL.
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir '.[postgres]'

FROM python:3.11-slim
LABEL io.modelcontextprotocol.server.name="io.github.crm-mcp/unified-crm-mcp" \
      org.opencontainers.image.title="unified-crm-mcp" \
      org.opencontainers.image.description="MCP server for the Apideck CRM unified API, over streamable HTTP" \
      org.opencontainers.image.source="https://github.com/crm-mcp/unified-crm-mcp" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --gid 10001 crm && useradd --uid 10001 --gid crm --create-home crm
COPY --from=build /opt/venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/crm
EXPOSE 8000
# /health answers 200 without a token and without a Host check (load balancers probe by IP).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
# 0.0.0.0 needs CRM_MCP_HTTP_TOKEN: without it the server refuses to start.
CMD ["crm-mcp", "serve", "--http", "--host", "0.0.0.0", "--port", "8000"]
