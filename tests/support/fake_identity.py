"""The Bot Framework's identity side on 127.0.0.1: OpenID metadata and signing keys for the tokens channels
send, and the login endpoint that issues the bot's own tokens.

It runs on a thread of its own with the standard library's HTTP server: botframework-connector fetches the
keys with `requests`, and a server on the test's event loop could not answer a blocking call made from that
loop. Real RSA keys are generated per run; `token()` signs claims the way the Bot Connector does.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://api.botframework.test"
APP_ID = "00000000-0000-0000-0000-00000000b075"
KEY_ID = "propbot-test-key"
ENDORSEMENTS = ("msteams", "webchat", "directline", "emulator")


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeIdentity:
    def __init__(self) -> None:
        self.key = new_key()
        self.token_delay = 0.0  # seconds the login endpoint takes to issue the bot's token
        self.keys_delay = 0.0  # seconds the signing keys take to arrive
        self.token_requests: list[dict[str, list[str]]] = []
        self.issued = 0
        # "keys" / "token": answers wait until the test releases them (a key server or login that hangs), and
        # `arrived` / `answered` count the requests that got there and the answers that went out.
        self.held: dict[str, threading.Event] = {}
        self.arrived: collections.Counter[str] = collections.Counter()
        self.answered: collections.Counter[str] = collections.Counter()
        self._server: ThreadingHTTPServer | None = None
        self.base_url = ""

    def start(self) -> None:
        identity = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:  # the test's output stays about the test
                return

            def _json(self, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/openid":
                    self._json({"issuer": ISSUER, "jwks_uri": identity.base_url + "/keys"})
                elif self.path == "/keys":
                    identity.wait("keys")
                    time.sleep(identity.keys_delay)
                    jwk = json.loads(RSAAlgorithm.to_jwk(identity.key.public_key()))
                    # Endorsed for several channels, as the Bot Framework's published keys are: botframework
                    # checks that the key endorses the activity's channelId.
                    key = {**jwk, "kid": KEY_ID, "use": "sig", "endorsements": list(ENDORSEMENTS)}
                    self._json({"keys": [key]})
                    identity.answered["keys"] += 1
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if not self.path.endswith("/oauth2/v2.0/token"):
                    self.send_error(404)
                    return
                identity.token_requests.append(form)
                identity.wait("token")
                time.sleep(identity.token_delay)
                identity.issued += 1
                self._json({"token_type": "Bearer", "expires_in": 3599, "access_token": f"bot-token-{identity.issued}"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def hold(self, what: str) -> None:
        self.held[what] = threading.Event()

    def release(self, what: str) -> None:
        self.held.pop(what).set()

    def wait(self, what: str) -> None:
        self.arrived[what] += 1
        held = self.held.get(what)
        if held is not None:
            held.wait(30)

    def stop(self) -> None:
        for held in self.held.values():
            held.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def settings(self) -> dict[str, Any]:
        """The propbot settings of an authenticated bot whose identity side is this server."""
        return {
            "microsoft_app_id": APP_ID,
            "microsoft_app_password": "test-app-secret-do-not-log",
            "microsoft_openid_metadata_url": self.base_url + "/openid",
            "microsoft_token_issuer": ISSUER,
            "microsoft_login_url": self.base_url + "/botframework.com",
            "teams_local_mode": False,
            "teams_allowed_tenants": "tenant-1",
        }

    def token(self, service_url: str, *, key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        """A channel token as the Bot Connector signs it; `claims` override (aud, exp, iss, ...)."""
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": APP_ID,
            "serviceurl": service_url,
            "nbf": now - 60,
            "exp": now + 3600,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": KEY_ID})


@pytest.fixture
def fake_identity() -> Iterator[FakeIdentity]:
    identity = FakeIdentity()
    identity.start()
    try:
        yield identity
    finally:
        identity.stop()
