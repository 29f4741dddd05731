"""The fake Slack Web API's file upload, as documented at docs.slack.dev/messaging/working-with-files: step 1
`files.getUploadURLExternal` (filename, length) gives an upload URL and a file id, step 2 is a POST of the bytes
to that URL, step 3 `files.completeUploadExternal` (files=[{id, title}], channel_id, thread_ts) shares them.
Mixed into `FakeSlack`."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

_ids = itertools.count(1)


@dataclass
class SharedFile:
    id: str
    filename: str
    title: str
    data: bytes
    channel: str
    thread_ts: str | None


class FileUploads:
    base_url: str
    violations: list[str]

    def _files_state(self) -> tuple[dict[str, dict[str, Any]], list[SharedFile]]:
        if not hasattr(self, "_pending_files"):
            self._pending_files: dict[str, dict[str, Any]] = {}
            self.shared_files: list[SharedFile] = []
        return self._pending_files, self.shared_files

    def _files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        pending, _ = self._files_state()
        if not args.get("filename") or not str(args.get("length", "")).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(_ids):08d}"
        pending[file_id] = {"filename": str(args["filename"]), "length": int(args["length"]), "data": None}
        upload = self.base_url.replace("/api/", f"/upload/{file_id}")
        return {"ok": True, "upload_url": upload, "file_id": file_id}

    async def upload(self, request: web.Request) -> web.Response:
        pending, _ = self._files_state()
        entry = pending.get(request.match_info["file_id"])
        if entry is None:
            return web.Response(status=404, text="unknown upload")
        data = await request.read()
        if len(data) != entry["length"]:
            self.violations.append(f"upload of {entry['filename']}: {len(data)} bytes, announced {entry['length']}")
        entry["data"] = data
        return web.Response(text=f"OK - {len(data)}")

    def _files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        pending, shared = self._files_state()
        raw = args.get("files")
        files = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        out = []
        for item in files:
            entry = pending.pop(str(item.get("id")), None)
            if entry is None or entry["data"] is None:
                return {"ok": False, "error": "file_not_found"}
            title = str(item.get("title") or entry["filename"])
            channel = str(args.get("channel_id") or "")
            shared.append(
                SharedFile(str(item["id"]), entry["filename"], title, entry["data"], channel, args.get("thread_ts"))
            )
            out.append({"id": item["id"], "title": title, "name": entry["filename"]})
        return {"ok": True, "files": out}
