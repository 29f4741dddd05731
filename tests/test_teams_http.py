"""The /api/messages route itself: authentication, anonymous-mode limits, malformed input."""

from __future__ import annotations

import jwt
import pytest

from tests.support.fake_connector import StartTeams, TeamsRig, execute, message
from tests.support.fake_openai import text

APP_ID = "00000000-0000-0000-0000-00000000b075"


async def nothing_happened(rig: TeamsRig) -> None:
    await rig.idle()
    assert rig.connector.calls == [] and rig.harness.fake.requests == []


def unknown_issuer_token() -> str:
    claims = {"iss": "https://attacker.example", "aud": APP_ID, "serviceurl": "http://127.0.0.1/"}
    return jwt.encode(claims, "a-secret-the-bot-has-never-seen-0123456789", algorithm="HS256")


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-jwt", f"Bearer {unknown_issuer_token()}", "Basic dXNlcjpwYXNz"],
    ids=["no-token", "malformed-token", "unknown-issuer", "wrong-scheme"],
)
async def test_with_an_app_id_requests_without_a_valid_token_are_refused(
    start_teams: StartTeams, authorization: str | None
) -> None:
    rig = await start_teams(
        microsoft_app_id=APP_ID, microsoft_app_password="not-used-by-this-test", teams_allowed_tenants="tenant-1"
    )
    rig.harness.fake.default = lambda _request: text("should never be asked")
    headers = {"Authorization": authorization} if authorization else None
    status, _ = await rig.post(message(rig.connector, "hello"), headers=headers)
    assert status == 401
    status, _ = await rig.post(execute(rig.connector, "propbot.approve", "any-id", card_id="1"), headers=headers)
    assert status == 401
    await nothing_happened(rig)


async def test_anonymous_mode_accepts_only_loopback_service_urls(start_teams: StartTeams) -> None:
    rig = await start_teams()
    rig.harness.fake.default = lambda _request: text("hi")
    for url in ("https://smba.trafficmanager.net/amer/", "http://169.254.169.254/", "http://127.0.0.1.evil.example/"):
        body = message(rig.connector, "hello")
        body["serviceUrl"] = url
        assert (await rig.post(body))[0] == 401, url
    await nothing_happened(rig)
    body = message(rig.connector, "hello")
    body["serviceUrl"] = rig.connector.service_url.replace("127.0.0.1", "localhost")
    assert (await rig.post(body))[0] == 200
    await rig.connector.wait_for(rig.connector.messages)


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b"", b"[1, 2]", b'"message"', b'{"type": "message"}', b'{"type": "message", "entities": "x"}'],
    ids=["broken", "empty", "array", "string", "no-conversation", "wrong-shape"],
)
async def test_malformed_activities_get_400_and_the_server_keeps_working(
    start_teams: StartTeams, payload: bytes
) -> None:
    rig = await start_teams()
    rig.harness.fake.default = lambda _request: text("still here")
    status, _ = await rig.post(payload)
    assert status == 400
    assert (await rig.post(message(rig.connector, "are you alive?")))[0] == 200
    [reply] = await rig.connector.wait_for(rig.connector.messages)
    assert reply.body["text"] == "still here"


async def test_an_unknown_card_verb_is_answered_with_an_error_body(start_teams: StartTeams) -> None:
    rig = await start_teams()
    status, body = await rig.post(execute(rig.connector, "propbot.delete-everything", "x", card_id="1"))
    assert status == 200 and body["statusCode"] == 400 and body["type"] == "application/vnd.microsoft.error"
    await nothing_happened(rig)


async def test_a_card_action_whose_verb_is_not_a_string_is_answered_with_an_error_body(
    start_teams: StartTeams,
) -> None:
    """Found by the fuzzer: `"verb": []` used to raise TypeError (unhashable) and answer 500."""
    rig = await start_teams()
    click = execute(rig.connector, "propbot.approve", "x", card_id="1")
    click["value"]["action"]["verb"] = []
    status, body = await rig.post(click)
    assert status == 200 and body["statusCode"] == 400
    await nothing_happened(rig)
