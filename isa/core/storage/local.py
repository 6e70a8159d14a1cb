"""A local folder for the embedded default, with HMAC-signed, expiring download links served by the app."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import anyio
import anyio.to_thread

from isa.core.storage.base import (
    CHUNK,
    InvalidLink,
    Link,
    ObjectExists,
    ObjectInfo,
    PresignedUpload,
    Storage,
    StorageSettings,
    StoredObject,
    _Sha256Counter,
    validate_key,
)


class LocalStorage(Storage):
    """A folder (the embedded default). Links are HMAC-signed and expiring, served by the files domain's routes."""

    backend = "local"

    def __init__(self, settings: StorageSettings, root: Path, url_prefix: str = "/api/v1/storage/local/") -> None:
        super().__init__(settings)
        self.root = root.resolve()
        self.url_prefix = url_prefix
        for sub in ("objects", "meta", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._key = settings.local_signing_key.encode() or self._stored_signing_key()

    def _stored_signing_key(self) -> bytes:
        """A random key kept next to the files, so links survive restarts without a configured secret."""
        path = self.root / ".signing-key"
        if not path.exists():
            tmp = self.root / "tmp" / uuid.uuid4().hex
            tmp.write_text(secrets.token_hex(32))
            tmp.chmod(0o600)
            try:
                os.link(tmp, path)  # atomic; another process may win, then we read its key
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip().encode()

    def path_for(self, key: str) -> Path:
        return self.root / "objects" / validate_key(key)

    def _meta_path(self, key: str) -> Path:
        return self.root / "meta" / (validate_key(key) + ".json")

    def sign(self, *parts: str) -> str:
        return hmac.new(self._key, "\n".join(parts).encode(), hashlib.sha256).hexdigest()

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str, max_bytes: int
    ) -> StoredObject:
        final = self.path_for(key)
        if final.exists():
            raise ObjectExists(key)
        counter = _Sha256Counter(max_bytes)
        tmp = self.root / "tmp" / uuid.uuid4().hex
        try:
            async with await anyio.open_file(tmp, "xb") as out:
                async for chunk in chunks:
                    counter.add(chunk)
                    await out.write(chunk)
            meta = {"content_type": content_type, "size": counter.size, "sha256": counter.hash.hexdigest()}
            await anyio.to_thread.run_sync(self._publish, key, tmp, final, meta)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: tmp.unlink(missing_ok=True))
        return StoredObject(key, counter.size, counter.hash.hexdigest(), content_type)

    def _publish(self, key: str, tmp: Path, final: Path, meta: dict[str, Any]) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        meta_path = self._meta_path(key)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        meta_path.write_text(json.dumps(meta))
        try:
            os.link(tmp, final)  # atomic and never replaces an existing object
        except FileExistsError:
            raise ObjectExists(key) from None

    async def head(self, key: str) -> ObjectInfo | None:
        path = self.path_for(key)

        def stat() -> ObjectInfo | None:
            try:
                st = path.stat()
            except FileNotFoundError:
                return None
            try:
                meta = json.loads(self._meta_path(key).read_text())
            except (OSError, ValueError):
                meta = {}
            modified = datetime.fromtimestamp(st.st_mtime, UTC)
            return ObjectInfo(key, st.st_size, meta.get("content_type", "application/octet-stream"), "", None, modified)

        return await anyio.to_thread.run_sync(stat)

    async def read(self, key: str, version_id: str | None = None) -> AsyncIterator[bytes]:
        async with await anyio.open_file(self.path_for(key), "rb") as f:
            while chunk := await f.read(CHUNK):
                yield chunk

    async def sweep_temporary(self, older_than_seconds: float) -> int:
        """Partial uploads in tmp/ not written to for `older_than_seconds` (a kill -9 mid-stream leaves them).

        Other processes share the folder, so only files idle past the bound go: a live stream keeps writing.
        """
        cutoff = time.time() - older_than_seconds

        def sweep() -> int:
            removed = 0
            for path in (self.root / "tmp").iterdir():
                try:
                    if path.is_file() and path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    pass  # another process swept or published it first
            return removed

        return await anyio.to_thread.run_sync(sweep)

    async def delete(self, key: str) -> None:
        def remove() -> None:
            self.path_for(key).unlink(missing_ok=True)
            self._meta_path(key).unlink(missing_ok=True)

        await anyio.to_thread.run_sync(remove)

    async def _download_link(self, link: Link, disposition: str, content_type: str, version_id: str | None) -> str:
        expires = str(link.deadline)
        sig = self.sign("GET", link.key, expires, content_type, disposition)
        query = urlencode({"expires": expires, "type": content_type, "disposition": disposition, "sig": sig})
        return f"{self.url_prefix}{link.key}?{query}"

    def check_download(self, key: str, query: dict[str, str], now: float | None = None) -> tuple[Path, str, str]:
        """(path, content type, disposition) for a valid, unexpired GET link; InvalidLink otherwise."""
        expires, ctype, disposition = query.get("expires", ""), query.get("type", ""), query.get("disposition", "")
        self._check(query.get("sig", ""), expires, now, "GET", key, expires, ctype, disposition)
        return self.path_for(key), ctype, disposition

    async def _upload_link(
        self, link: Link, content_type: str, max_bytes: int, method: Literal["POST", "PUT"]
    ) -> PresignedUpload:
        # One shape locally: a signed PUT bound to the key, type and size cap (enforced by check_upload).
        expires = str(link.deadline)
        sig = self.sign("PUT", link.key, expires, content_type, str(max_bytes))
        query = urlencode({"expires": expires, "type": content_type, "max": str(max_bytes), "sig": sig})
        return PresignedUpload(
            "PUT", f"{self.url_prefix}{link.key}?{query}", link.expires_at, headers={"Content-Type": content_type}
        )

    def check_upload(self, key: str, query: dict[str, str], now: float | None = None) -> tuple[str, int]:
        """(content type, max bytes) for a valid, unexpired PUT link; InvalidLink otherwise."""
        expires, ctype, limit = query.get("expires", ""), query.get("type", ""), query.get("max", "")
        self._check(query.get("sig", ""), expires, now, "PUT", key, expires, ctype, limit)
        return ctype, int(limit)

    def _check(self, sig: str, expires: str, now: float | None, *signed: str) -> None:
        validate_key(signed[1])
        if not hmac.compare_digest(sig.encode(), self.sign(*signed).encode()):
            raise InvalidLink("signature does not match")
        if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
            raise InvalidLink("link expired")

    async def list_objects(self, prefix: str, *, limit: int = 1000) -> list[ObjectInfo]:
        base = self.root / "objects"
        # Walk only the folder the prefix names, not the whole tree.
        start = base / prefix.rsplit("/", 1)[0] if "/" in prefix else base

        def walk() -> list[ObjectInfo]:
            out: list[ObjectInfo] = []
            if ".." in prefix.split("/") or not start.is_dir():
                return out
            for path in sorted(start.rglob("*")):
                key = path.relative_to(base).as_posix()
                if path.is_file() and key.startswith(prefix):
                    st = path.stat()
                    out.append(ObjectInfo(key, st.st_size, "", "", None, datetime.fromtimestamp(st.st_mtime, UTC)))
                    if len(out) >= limit:
                        break
            return out

        return await anyio.to_thread.run_sync(walk)
