"""LocalStore: outputs saved under a local folder (default `./var/assets/`).

The embedded default for development and the sandbox demo. Files are written to a temp file in
the target folder and renamed into place, so a reader never sees half a file and a retried job
replaces its own file atomically. A `ctx` bucket means nothing here and is ignored; a `ctx`
prefix applies as it does on S3.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

import requests

from connectors.assets.base import SERVICE
from connectors.assets.netguard import DownloadPolicy
from connectors.assets.pipeline import PreparedAsset, Saver, Stored
from connectors.assets.staging import disk_error
from connectors.errors import validation_error

__all__ = ["LocalAssetSaver", "LocalStore"]


class LocalStore:
    """A Store of files under `root`; the URL is `public_url/<key>` or a `file://` URL."""

    def __init__(self, root: str | Path = "var/assets", public_url: str | None = None) -> None:
        self.root = Path(root).resolve()
        self.public_url = public_url.rstrip("/") if public_url else None

    def put(self, asset: PreparedAsset) -> Stored:
        """Write the file atomically at `root/<key>`; a folder has no bucket."""
        return Stored(self._url(asset.key, self._write(asset)), None)

    def _write(self, asset: PreparedAsset) -> Path:
        path = (self.root / asset.key).resolve()
        if not path.is_relative_to(self.root):  # keys are sanitised; this is the backstop
            raise validation_error(
                "key", f"{asset.key!r} escapes the asset folder", service=SERVICE
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(asset.content.file, out, 1024 * 1024)
                os.chmod(temp, 0o644)  # mkstemp makes 0600; a static file server must read it
                os.replace(temp, path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise disk_error(exc, f"write {asset.key!r} under {self.root}") from exc
        return path

    def _url(self, key: str, path: Path) -> str:
        if self.public_url:
            return f"{self.public_url}/{quote(key)}"
        return path.as_uri()


# Named like a class because it was one; callers still construct savers by this name.
def LocalAssetSaver(
    root: str | Path = "var/assets",
    *,
    public_url: str | None = None,
    prefix: str | None = None,
    policy: DownloadPolicy | None = None,
    session: requests.Session | None = None,
) -> Saver:
    """The Saver that writes to a LocalStore under `root`."""
    return Saver(LocalStore(root, public_url), prefix=prefix, policy=policy, session=session)
