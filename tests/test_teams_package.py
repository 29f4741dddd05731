"""`propbot teams-package`: the Teams app zip, through the real command line, and its manifest checked
against Microsoft's app manifest schema (the file bundled in appPackage/schema/, see its README)."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator, Draft7Validator, validators
from jsonschema.protocols import Validator

from adapters.teams.package import APP_PACKAGE, build
from bot.app.cli import main

APP_ID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
SCHEMA_FILE = APP_PACKAGE / "schema" / "MicrosoftTeams.schema.json"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def rgba_pixels(data: bytes) -> list[tuple[int, int, int, int]]:
    """The pixels of an 8-bit, non-interlaced RGBA PNG (what the icons are), decoded with the standard library."""
    width, height = png_size(data)
    depth, color_type, interlace = data[24], data[25], data[28]
    assert (depth, color_type, interlace) == (8, 6, 0), "the icons are 8-bit RGBA, not interlaced"
    chunks, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            chunks += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw, stride, rows = zlib.decompress(chunks), width * 4, []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - 4] if x >= 4 else 0
            up, up_left = previous[x], previous[x - 4] if x >= 4 else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return [(r[i], r[i + 1], r[i + 2], r[i + 3]) for r in rows for i in range(0, stride, 4)]


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


@cache
def manifest_validator() -> Validator:
    """A validator for the bundled schema. The file declares draft-04 but also uses `const` (the manifestVersion)
    and `if`/`then` from later drafts; a plain Draft4Validator would skip those silently, so they are added.

    The schema itself is checked against the draft-04 meta-schema without format checks: one pattern (Excel
    custom function names under `extensions`) uses ECMAScript's `\\p{L}`, which Python's `re` cannot compile.
    propbot's manifest has no `extensions`; if it ever had, validation would raise rather than pass."""
    Draft4Validator(Draft4Validator.META_SCHEMA).validate(schema())
    later = {keyword: Draft7Validator.VALIDATORS[keyword] for keyword in ("const", "if")}
    cls: type[Validator] = validators.extend(Draft4Validator, later)  # type: ignore[no-untyped-call]
    return cls(schema(), format_checker=Draft4Validator.FORMAT_CHECKER)


def schema_errors(manifest: dict[str, Any]) -> list[str]:
    errors = sorted(manifest_validator().iter_errors(manifest), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]


def packaged_manifest(tmp_path: Path, domain: str | None = "propbot.example.com") -> dict[str, Any]:
    """What `propbot teams-package` puts in the zip: the same build() the command calls, with a test app id."""
    with zipfile.ZipFile(build(APP_ID, tmp_path / "teams.zip", domain)) as zf:
        manifest: dict[str, Any] = json.loads(zf.read("manifest.json"))
    return manifest


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)  # no stray .env file
    for name in ("MICROSOFT_APP_ID", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_zip_has_the_manifest_with_the_app_id_and_both_icons(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("MICROSOFT_APP_ID", APP_ID)
    out = tmp_path / "teams.zip"
    assert main(["teams-package", "--out", str(out), "--domain", "propbot.example.com"]) == 0
    assert str(out) in capsys.readouterr().out
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(zf.read("manifest.json"))
        color, outline = zf.read("color.png"), zf.read("outline.png")
    assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID
    assert "{{" not in json.dumps(manifest)
    assert manifest["manifestVersion"] == "1.30"
    assert schema_errors(manifest) == []
    bot = manifest["bots"][0]
    assert sorted(bot["scopes"]) == ["groupChat", "personal", "team"]
    assert (bot["supportsFiles"], bot["isNotificationOnly"]) == (False, False)
    [commands] = bot["commandLists"]
    assert sorted(commands["scopes"]) == ["groupChat", "personal", "team"]
    # Prompt starters: an AI agent's commands must be of type prompt with a prompt, or submission fails.
    prompts = [c["prompt"] for c in commands["commands"] if c.get("type") == "prompt" and c["title"]]
    assert len(prompts) == len(commands["commands"])
    assert {"Find 2-bedroom apartments in Austin", "List open maintenance requests for P-1001"} <= set(prompts)
    assert manifest["validDomains"] == ["propbot.example.com"]
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    assert png_size(color) == (192, 192) and png_size(outline) == (32, 32)
    assert color == (APP_PACKAGE / "color.png").read_bytes()
    # Teams wants the outline icon white on a transparent background.
    pixels = rgba_pixels(outline)
    assert all(a == 0 or (r, g, b) == (255, 255, 255) for r, g, b, a in pixels)
    assert {a == 0 for *_, a in pixels} == {True, False}
    assert any(a == 255 for *_, a in rgba_pixels(color))


@pytest.mark.parametrize("domain", ["propbot.example.com", None])
def test_the_packaged_manifest_validates_against_the_bundled_teams_schema(tmp_path: Path, domain: str | None) -> None:
    manifest = packaged_manifest(tmp_path, domain)
    assert schema_errors(manifest) == []
    assert manifest["validDomains"] == ([domain] if domain else [])


def test_the_manifest_names_the_schema_version_that_is_bundled() -> None:
    template = json.loads((APP_PACKAGE / "manifest.json").read_text(encoding="utf-8"))
    version = schema()["properties"]["manifestVersion"]["const"]
    url = f"https://developer.microsoft.com/json-schemas/teams/v{version}/MicrosoftTeams.schema.json"
    assert (template["manifestVersion"], template["$schema"]) == (version, url)
    readme = (SCHEMA_FILE.parent / "README.md").read_text(encoding="utf-8")
    assert f"v{version}" in readme


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(manifest: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = manifest
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value

    return change


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (_set("manifestVersion", "1.17"), "manifestVersion"),
        (_set("bots/0/botId", "my-bot"), "bots/0/botId"),
        (_set("bots/0/scopes", ["personal", "channel"]), "bots/0/scopes/1"),
        (_set("bots/0/commandLists/0/commands/0/type", "slash"), "bots/0/commandLists/0/commands/0/type"),
        (_set("bots/0/supportsStreaming", True), "bots/0"),
        (_set("accentColor", "blue"), "accentColor"),
        (_set("name/short", "propbot, the property management assistant"), "name/short"),
        (_set("developer/privacyUrl", "example.com/privacy"), "developer/privacyUrl"),
    ],
    ids=["old-version", "bot-id", "scope", "command-type", "unknown-bot-field", "accent", "short-name", "url"],
)
def test_the_schema_check_catches_what_teams_would_refuse(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], where: str
) -> None:
    manifest = packaged_manifest(tmp_path)
    change(manifest)
    errors = schema_errors(manifest)
    assert errors and all(e.startswith(f"{where}:") for e in errors), errors


def test_without_an_app_id_it_fails_in_one_line(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "teams.zip"
    assert main(["teams-package", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "MICROSOFT_APP_ID should be set" in err
    assert not out.exists()


def test_an_app_id_that_is_not_a_guid_is_refused(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("MICROSOFT_APP_ID", "my-bot")
    assert main(["teams-package"]) == 2
    assert "should be a GUID" in capsys.readouterr().err
    assert not Path("propbot-teams.zip").exists()


@pytest.mark.parametrize(
    "spelling",
    [
        "{3F2504E0-4F89-11D3-9A0C-0305E82C3301}",
        "3f2504e04f8911d39a0c0305e82c3301",
        "urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        " 3F2504E0-4F89-11D3-9A0C-0305E82C3301 ",
    ],
)
def test_other_guid_spellings_are_written_in_the_canonical_form(
    env: pytest.MonkeyPatch, tmp_path: Path, spelling: str
) -> None:
    env.setenv("MICROSOFT_APP_ID", spelling)
    out = tmp_path / "teams.zip"
    assert main(["teams-package", "--out", str(out)]) == 0
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID


@pytest.mark.parametrize("app_id", ["3f2504e0-4f89-11d3-9a0c", "3f2504e0-4f89-11d3-9a0c-0305e82c33g1", "my-bot"])
def test_a_near_guid_is_refused_in_one_line(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], app_id: str
) -> None:
    env.setenv("MICROSOFT_APP_ID", app_id)
    assert main(["teams-package"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "MICROSOFT_APP_ID should be a GUID" in err
    assert not Path("propbot-teams.zip").exists()
