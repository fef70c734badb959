"""Asset savers: provider outputs saved to S3-compatible storage or a local folder.

There is one saver, `Saver`, given the `Store` it writes to: `LocalStore` (a folder) or `S3Store`
(an S3-compatible bucket); `saver_from_env()` picks the store from CLOUD_STORAGE_PROVIDER, and
`LocalAssetSaver` / `S3AssetSaver` build the saver for one store. It streams the output (a
download never sits whole in memory), names it `{prefix}/{job_id}_{sha256[:12]}.{ext}` so a
retried job overwrites its own object, refuses unsafe downloads (SSRF), refuses active content
(HTML, SVG, scripts) and outputs of another kind than `expect`, and raises a classified
ConnectorError when the output cannot be saved.
"""

from connectors.assets.base import (
    AssetSaver,
    AssetSource,
    Base64Data,
    ExpectedKind,
    RemoteUrl,
    SavedAsset,
    asset_key,
)
from connectors.assets.factory import (
    LazyAssetSaver,
    download_policy,
    saver_from_env,
    store_from_settings,
)
from connectors.assets.local import LocalAssetSaver, LocalStore
from connectors.assets.mime import extension_for, mime_from_magic, resolve_mime
from connectors.assets.netguard import DownloadPolicy, guarded_session
from connectors.assets.pipeline import Saver, Store, Stored
from connectors.assets.s3 import S3AssetSaver, S3Store, build_s3_client
from connectors.assets.settings import AssetSettings, load_settings
from connectors.assets.storage_errors import classify_storage_code

__all__ = [
    "AssetSaver",
    "AssetSettings",
    "AssetSource",
    "Base64Data",
    "DownloadPolicy",
    "ExpectedKind",
    "LazyAssetSaver",
    "LocalAssetSaver",
    "LocalStore",
    "RemoteUrl",
    "S3AssetSaver",
    "S3Store",
    "SavedAsset",
    "Saver",
    "Store",
    "Stored",
    "asset_key",
    "build_s3_client",
    "classify_storage_code",
    "download_policy",
    "extension_for",
    "guarded_session",
    "load_settings",
    "mime_from_magic",
    "resolve_mime",
    "saver_from_env",
    "store_from_settings",
]
