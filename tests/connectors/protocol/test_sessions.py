"""Sessions: they skip requests' per-call environment lookups only when empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.protocol.sessions import ca_bundle, environment_matters, new_session


@pytest.mark.parametrize(
    ("env", "matters"),
    [
        ({"PATH": "/usr/bin", "GLIF_API_TOKEN": "x"}, False),
        ({"HTTPS_PROXY": "http://proxy:3128"}, True),
        ({"http_proxy": "http://proxy:3128"}, True),
        ({"all_proxy": "socks5://proxy:1080"}, True),
        ({"NO_PROXY": "localhost"}, True),
        ({"HTTPS_PROXY": ""}, False),
        ({"REQUESTS_CA_BUNDLE": "/etc/ssl/ca.pem"}, False),  # read once: ca_bundle()
        ({"NETRC": "/secrets/netrc"}, True),
    ],
)
def test_the_environment_matters_when_requests_would_read_something_from_it(
    env: dict[str, str], matters: bool, tmp_path: Path
) -> None:
    assert environment_matters(env, home=tmp_path) is matters


@pytest.mark.parametrize("name", [".netrc", "_netrc"])
def test_a_netrc_file_in_home_matters(name: str, tmp_path: Path) -> None:
    (tmp_path / name).write_text("machine example.com login a password b\n")
    assert environment_matters({}, home=tmp_path) is True


def test_a_new_session_keeps_requests_lookups_only_when_they_can_find_something(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    assert new_session().trust_env is environment_matters()
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert new_session().trust_env is True


@pytest.mark.parametrize(
    ("env", "bundle"),
    [
        ({}, None),
        ({"REQUESTS_CA_BUNDLE": "/a.pem", "CURL_CA_BUNDLE": "/b.pem"}, "/a.pem"),
        ({"CURL_CA_BUNDLE": "/b.pem"}, "/b.pem"),
        ({"REQUESTS_CA_BUNDLE": ""}, None),
    ],
)
def test_the_ca_bundle_is_the_one_requests_would_read(
    env: dict[str, str], bundle: str | None
) -> None:
    assert ca_bundle(env) == bundle


def test_a_new_session_verifies_with_the_environments_ca_bundle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    assert new_session().verify == "/etc/ssl/certs/ca-certificates.crt"
