"""`propbot teams-package`: the Teams app zip (manifest.json + two icons) with the bot's app id filled in.

Teams requires the three files at the root of the zip, and the manifest's `id` / `botId` to be the Azure
Bot's app id (a GUID); a zip built without one installs but can never reach the bot, so it is refused.
"""

from __future__ import annotations

import json
import re
import uuid
import zipfile
from pathlib import Path
from typing import Any, Final

APP_PACKAGE: Final = Path(__file__).resolve().parents[2] / "appPackage"
FILES: Final = ("manifest.json", "color.png", "outline.png")
_DOMAIN: Final = re.compile(r"^(?=.{1,253}$)([a-z0-9-]+\.)+[a-z]{2,}$", re.IGNORECASE)


class PackageError(Exception):
    """One line a person can act on."""


def canonical_guid(app_id: str) -> str:
    """The 8-4-4-4-12 lowercase form Teams' manifest schema demands, from any spelling uuid.UUID reads
    ('{GUID}', 32 bare hex digits, 'urn:uuid:...', upper case); PackageError for anything else."""
    try:
        return str(uuid.UUID(app_id.strip()))
    except ValueError:
        raise PackageError(
            f"MICROSOFT_APP_ID should be a GUID such as 3f2504e0-4f89-11d3-9a0c-0305e82c3301 "
            f"(the Azure Bot's app id), got {app_id!r}"
        ) from None


def manifest(app_id: str, domain: str | None = None, source: Path = APP_PACKAGE) -> dict[str, Any]:
    if not app_id:
        raise PackageError("MICROSOFT_APP_ID should be set: the Azure Bot's app id goes into the Teams manifest")
    app_id = canonical_guid(app_id)
    if domain is not None and not _DOMAIN.match(domain):
        raise PackageError(f"--domain should be a host name such as propbot.example.com, got {domain!r}")
    try:
        template = (source / "manifest.json").read_text(encoding="utf-8")
    except OSError as exc:
        raise PackageError(f"cannot read the manifest template in {source}: {exc.strerror}") from None
    data: dict[str, Any] = json.loads(template.replace("{{MICROSOFT_APP_ID}}", app_id))
    # The bot's own host is the only domain it needs; without one the list is empty rather than invalid.
    data["validDomains"] = [domain] if domain else []
    return data


def build(app_id: str, out: Path, domain: str | None = None, source: Path = APP_PACKAGE) -> Path:
    """Write the zip to `out`; raises PackageError with one clear line."""
    content = json.dumps(manifest(app_id, domain, source), indent=2, ensure_ascii=False)
    for name in FILES[1:]:
        if not (source / name).is_file():
            raise PackageError(f"the icon {source / name} is missing")
    try:
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("manifest.json", content)
            for name in FILES[1:]:
                zf.write(source / name, arcname=name)
    except OSError as exc:
        raise PackageError(f"cannot write {out}: {exc.strerror}") from None
    return out
