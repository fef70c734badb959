"""The HTTP sessions connectors call providers with: keep-alive pools, no retries, no idle lookups.

A session keeps as many connections per host as the worker has slots, and retries nothing
(Celery owns retries). A `requests.Session` with `trust_env` on also looks in the environment
on every request: proxy variables (walking all of `os.environ`), `NO_PROXY`,
`REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE`, and a `.netrc` file it opens when the request has no
auth of its own - about 0.15 ms of CPU a call, measured here. A worker's environment is fixed
when it starts, so a session reads the CA bundle once, when it is made (as the session's
`verify`, which is what requests would use: no call here passes its own), and when there is no
proxy variable and no netrc file the other lookups can only come back empty: the session skips
them (`trust_env` off) without changing what it does. With a proxy or a netrc, requests keeps
reading the environment per request, exactly as before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

__all__ = ["ca_bundle", "environment_matters", "new_session", "size_pool"]

_CA_BUNDLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_NETRC_FILES = (".netrc", "_netrc")


def ca_bundle(env: Mapping[str, str] | None = None) -> str | None:
    """The CA bundle requests would verify with, from the environment (None: its default)."""
    env = os.environ if env is None else env
    return next((env[name] for name in _CA_BUNDLES if env.get(name)), None)


def environment_matters(env: Mapping[str, str] | None = None, home: Path | None = None) -> bool:
    """True when requests would find a proxy or a netrc file in the environment on a call."""
    env = os.environ if env is None else env
    if any(name.lower().endswith("_proxy") and value for name, value in env.items()):
        return True
    if env.get("NETRC"):
        return True
    home = Path(env.get("HOME") or Path.home()) if home is None else home
    return any((home / name).exists() for name in _NETRC_FILES)


def new_session(pool_size: int = 10) -> requests.Session:
    """A keep-alive session with a connection pool and no retries of its own."""
    session = requests.Session()
    if bundle := ca_bundle():
        session.verify = bundle
    session.trust_env = environment_matters()  # off: no environment lookups on every call
    return size_pool(session, pool_size)


def size_pool(session: requests.Session, pool_size: int) -> requests.Session:
    """`session` keeping up to `pool_size` connections per host alive, and no retries.

    One connector serves every slot of a worker: a pool smaller than the slots makes the calls
    beyond it open a connection and throw it away each time.
    """
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
