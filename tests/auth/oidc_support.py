"""A real authorization server for the OAuth tests (oidc-provider on Node.js, started from
authorization_server.mjs), and our MCP server over HTTP in front of the sandbox CRM, trusting it.

oidc-provider is installed by .ci/run into .ci/oidc. Without it (or without node) the OAuth tests
skip, unless CRM_MCP_REQUIRE_OIDC=1 (CI), where a missing authorization server is a failure.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import http_clients
import uvicorn

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_MODULE = ROOT / ".ci" / "oidc" / "node_modules" / "oidc-provider" / "lib" / "index.js"
SCRIPT = Path(__file__).with_name("authorization_server.mjs")
INSTALL_COMMAND = "npm install --prefix .ci/oidc oidc-provider@8.8.1"
CLIENT_SECRET = "test-secret-of-a-confidential-client"  # every confidential client's, see the .mjs
ALL_SCOPES = "crm:read crm:write crm:delete"
REDIRECT_URI = "http://127.0.0.1/callback"


def missing_reason() -> str | None:
    """Why the authorization server cannot run here (None when it can)."""
    if shutil.which("node") is None:
        return "node (Node.js) is not installed"
    if not PROVIDER_MODULE.exists():
        return f"oidc-provider is not installed; install it with `{INSTALL_COMMAND}`"
    return None


class AuthorizationServer:
    """oidc-provider in a node process: `issuer`, an `impostor` issuer with the same keys, tokens."""

    def __init__(self) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close(), with the process)
        self._process = subprocess.Popen(
            ["node", str(SCRIPT), str(PROVIDER_MODULE)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
        )
        started = self._read_line()
        self.issuer: str = started["issuer"]
        self.impostor: str = started["impostor"]
        self.http = http_clients.sync_client(timeout=10)

    def _read_line(self) -> dict[str, Any]:
        """The script's next JSON line (oidc-provider prints its own notices on stdout too)."""
        assert self._process.stdout is not None
        while line := self._process.stdout.readline():
            if line.startswith("{"):
                result: dict[str, Any] = json.loads(line)
                return result
        self._stderr.seek(0)
        raise RuntimeError(f"the authorization server stopped: {self._stderr.read().decode()[-2000:]}")

    def close(self) -> None:
        self.http.close()
        assert self._process.stdin is not None
        self._process.stdin.close()  # the script exits when its stdin closes
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._stderr.close()

    def rotate_keys(self) -> str:
        """A new signing key in the authorization server (the old one stays published); its key id."""
        assert self._process.stdin is not None
        self._process.stdin.write("rotate\n")
        self._process.stdin.flush()
        kid: str = self._read_line()["rotated"]
        return kid

    def _token(self, issuer: str, data: dict[str, str], auth: tuple[str, str] | None = None) -> str:
        response = self.http.post(f"{issuer}/token", data=data, auth=auth)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def client_credentials(
        self, client_id: str, resource: str, scope: str = ALL_SCOPES, *, issuer: str | None = None
    ) -> str:
        """An access token for machine client `client_id`, bound to `resource`."""
        return self._token(
            issuer or self.issuer,
            {"grant_type": "client_credentials", "resource": resource, "scope": scope},
            auth=(client_id, CLIENT_SECRET),
        )

    def authorization_code(self, account: str, resource: str, scope: str = ALL_SCOPES) -> str:
        """An access token for user `account` through the public client `desktop`: authorization
        code with PKCE (S256), signing in and consenting on the server's own HTML forms."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(16)
        query = sign_in(f"{self.issuer}/auth", account, params={
            "client_id": "desktop", "response_type": "code", "redirect_uri": REDIRECT_URI, "scope": scope,
            "resource": resource, "code_challenge": challenge, "code_challenge_method": "S256", "state": state,
        })
        assert query["state"] == state
        return self._token(self.issuer, {
            "grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier, "client_id": "desktop", "resource": resource,
        })


def sign_in(authorization_url: str, account: str, params: dict[str, str] | None = None) -> dict[str, str]:
    """What a user does in the browser: open the authorization URL, sign in as `account` and
    consent on oidc-provider's own HTML forms; returns the parameters of the redirect back to
    REDIRECT_URI (`code`, `state`, `iss`)."""
    with http_clients.sync_client(timeout=10, follow_redirects=False) as browser:  # keeps the interaction cookies
        response = browser.get(authorization_url, params=params)
        for form in ({"prompt": "login", "login": account, "password": "any"}, {"prompt": "consent"}):
            while response.status_code in (302, 303) and not response.headers["location"].startswith(REDIRECT_URI):
                response = browser.get(urljoin(str(response.url), response.headers["location"]))
            assert response.status_code == 200, response.text
            action = re.search(r'<form[^>]*action="([^"]+)"', response.text)
            assert action, response.text
            response = browser.post(urljoin(str(response.url), action.group(1)), data=form)
        while not response.headers.get("location", "").startswith(REDIRECT_URI):
            assert response.status_code in (302, 303), response.text
            response = browser.get(urljoin(str(response.url), response.headers["location"]))
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


def free_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve(make_app: Callable[[int], Any]) -> Iterator[int]:
    """Serve the ASGI app `make_app(port)` under uvicorn on a free loopback port, in a thread (the
    app needs its port first: it is part of the resource URI tokens are bound to)."""
    sock = free_port()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(make_app(port), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def require_oidc() -> bool:
    return os.environ.get("CRM_MCP_REQUIRE_OIDC") == "1"
