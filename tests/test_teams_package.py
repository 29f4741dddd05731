"""`propbot teams-package`: the Teams app zip, through the real command line."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import pytest

from adapters.teams.package import APP_PACKAGE
from bot.app.cli import main

APP_ID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


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
    assert float(manifest["manifestVersion"]) >= 1.16
    assert sorted(manifest["bots"][0]["scopes"]) == ["groupChat", "personal", "team"]
    titles = [c["title"] for c in manifest["bots"][0]["commandLists"][0]["commands"]]
    assert {"find", "requests", "schedule"} <= set(titles)
    assert manifest["validDomains"] == ["propbot.example.com"]
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    assert png_size(color) == (192, 192) and png_size(outline) == (32, 32)
    assert color == (APP_PACKAGE / "color.png").read_bytes()


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
