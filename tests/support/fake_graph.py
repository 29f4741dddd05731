"""Microsoft's identity platform and Graph on 127.0.0.1, for Entra ID group roles: a token authority over TLS (msal
accepts only https authorities; the test trusts the run's own certificate through REQUESTS_CA_BUNDLE) with its
OpenID configuration and client-credentials token endpoint, and Graph's `transitiveMemberOf` (paged, as Graph pages
with `@odata.nextLink`) and `users/{id}` over plain HTTP.

Both run on a thread of their own: msal asks for tokens with blocking `requests` calls, from a worker thread.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.tls import loopback_certificate

CLIENT_ID = "00000000-0000-0000-0000-0000000c1e47"
CLIENT_SECRET = "graph-test-secret"


@dataclass
class FakeGraph:
    authority: str = ""  # https://127.0.0.1:<port>
    graph_url: str = ""  # http://127.0.0.1:<port>/v1.0
    groups: dict[str, list[str]] = field(default_factory=dict)  # user object id -> group ids (nested included)
    users: dict[str, dict[str, str]] = field(default_factory=dict)  # user object id -> {mail, userPrincipalName}
    down: bool = False  # Graph answers 503
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    graph_requests: list[str] = field(default_factory=list)
    page_size: int = 1

    def token_for(self, tenant: str) -> str:
        return f"graph-token-{tenant}"


def _handler(fake: FakeGraph) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if parts[-2:] == [".well-known", "openid-configuration"]:
                tenant = parts[0]
                base = f"{fake.authority}/{tenant}"
                return self._send(
                    200,
                    {
                        "token_endpoint": f"{base}/oauth2/v2.0/token",
                        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                        "issuer": f"{base}/v2.0",
                    },
                )
            fake.graph_requests.append(self.path)
            if fake.down:
                return self._send(503, {"error": {"code": "serviceNotAvailable", "message": "try later"}})
            if not str(self.headers.get("Authorization", "")).startswith("Bearer graph-token-"):
                return self._send(401, {"error": {"code": "InvalidAuthenticationToken", "message": "no token"}})
            if len(parts) >= 4 and parts[:2] == ["v1.0", "users"] and parts[3] == "transitiveMemberOf":
                start = int(parse_qs(url.query).get("$skiptoken", ["0"])[0])
                ids = fake.groups.get(parts[2], [])
                page = ids[start : start + fake.page_size]
                body: dict[str, Any] = {"value": [{"@odata.type": "#microsoft.graph.group", "id": g} for g in page]}
                if start + fake.page_size < len(ids):
                    next_url = f"{fake.graph_url}/users/{parts[2]}/transitiveMemberOf/microsoft.graph.group"
                    body["@odata.nextLink"] = f"{next_url}?$skiptoken={start + fake.page_size}"
                return self._send(200, body)
            if len(parts) == 3 and parts[:2] == ["v1.0", "users"]:
                user = fake.users.get(parts[2])
                if user is None:
                    return self._send(404, {"error": {"code": "Request_ResourceNotFound", "message": "no user"}})
                return self._send(200, {"id": parts[2], **user})
            return self._send(404, {"error": {"code": "NotFound", "message": self.path}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            fake.token_requests.append(form)
            tenant = urlsplit(self.path).path.strip("/").split("/")[0]
            if form.get("client_id") != [CLIENT_ID] or form.get("client_secret") != [CLIENT_SECRET]:
                return self._send(401, {"error": "invalid_client", "error_description": "bad secret"})
            token = {"access_token": fake.token_for(tenant), "token_type": "Bearer", "expires_in": 3600}
            return self._send(200, token)

    return Handler


@pytest.fixture
def fake_graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraph]:
    fake = FakeGraph()
    cert, key = loopback_certificate(tmp_path)
    login = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    login.socket = context.wrap_socket(login.socket, server_side=True)
    graph = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.authority = f"https://127.0.0.1:{login.server_address[1]}"
    fake.graph_url = f"http://127.0.0.1:{graph.server_address[1]}/v1.0"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # msal's requests trust this run's authority
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (login, graph)]
    for thread in threads:
        thread.start()
    try:
        yield fake
    finally:
        for server in (login, graph):
            server.shutdown()
            server.server_close()
