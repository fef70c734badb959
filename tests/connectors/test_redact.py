"""Redaction: credentials masked by key, registered secrets scrubbed by value, sizes bounded."""

from __future__ import annotations

import json

import pytest

from connectors.redact import (
    MAX_CONTEXT_CHARS,
    REDACTED,
    redact,
    register_secret,
    scrub,
    truncate,
)

# --- masking by key -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "apiKey",
        "API-KEY",
        "Authorization",
        "authorization",
        "token",
        "access_token",
        "refresh_token",
        "x-goog-api-key",
        "client_secret",
        "password",
        "credentials",
        "signature",
        "aws_access_key_id",
        "session_key",
    ],
)
def test_credential_keys_are_masked(key: str) -> None:
    assert redact({key: "some-value"}) == {key: REDACTED}


@pytest.mark.parametrize(
    "key",
    [
        "prompt_tokens",
        "completion_tokens",
        "max_tokens",
        "total_tokens",
        "token_count",
        "tokens_used",
        "input_tokens_details",
        "prompt",
        "model",
    ],
)
def test_count_and_ordinary_keys_are_kept(key: str) -> None:
    assert redact({key: 42}) == {key: 42}


def test_empty_credential_value_is_left_visible_as_empty() -> None:
    # Showing that a token was *missing* is useful forensics and reveals nothing.
    assert redact({"api_key": "", "token": None}) == {"api_key": "", "token": None}


def test_usage_block_survives_while_the_key_beside_it_is_masked() -> None:
    value = {"usage": {"prompt_tokens": 10, "completion_tokens": 5}, "api_key": "k-123456"}
    assert redact(value) == {
        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        "api_key": REDACTED,
    }


# --- scrubbing by value -------------------------------------------------------------------------

SECRET = "glif-redact-test-token-42"


def test_registered_secret_is_scrubbed_anywhere_in_text() -> None:
    register_secret(SECRET)
    assert (
        scrub(f"Incorrect API key provided: {SECRET}.")
        == f"Incorrect API key provided: {REDACTED}."
    )
    assert scrub(f"{SECRET}{SECRET}") == REDACTED * 2


def test_registered_secret_is_scrubbed_under_innocent_keys() -> None:
    register_secret(SECRET)
    value = {"message": f"echo {SECRET}", "items": [f"x{SECRET}y"]}
    assert redact(value) == {"message": f"echo {REDACTED}", "items": [f"x{REDACTED}y"]}


@pytest.mark.parametrize("short", ["", None, "abc", "12345"])
def test_short_or_empty_secrets_are_not_registered(short: str | None) -> None:
    register_secret(short)
    assert scrub("abc 12345 text") == "abc 12345 text"


def test_longer_secret_is_scrubbed_before_its_prefix() -> None:
    register_secret("prefix-secret")
    register_secret("prefix-secret-and-more")
    assert scrub("x prefix-secret-and-more y") == f"x {REDACTED} y"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abcdef0123456789", f"Authorization: Bearer {REDACTED}"),
        ("bearer eyJhbGciOi.J9.abc-_", f"bearer {REDACTED}"),
        ("BEARER   abcdefgh", f"BEARER   {REDACTED}"),
        ("Bearer short", "Bearer short"),  # fewer than 8 chars: not treated as a credential
        ("no credential here", "no credential here"),
    ],
)
def test_bearer_credentials_are_scrubbed(text: str, expected: str) -> None:
    assert scrub(text) == expected


# --- truncation ---------------------------------------------------------------------------------


def test_short_text_is_unchanged() -> None:
    assert truncate("hello", 10) == "hello"
    assert truncate("x" * 10, 10) == "x" * 10


def test_long_text_is_cut_to_the_limit_and_says_so() -> None:
    out = truncate("x" * 5000, 300)
    assert len(out) == 300
    assert out.endswith("...[truncated 5000 chars]")


@pytest.mark.parametrize("size", [301, 1000, 50_000])
def test_truncation_is_idempotent(size: int) -> None:
    once = truncate("y" * size, 300)
    assert truncate(once, 300) == once


def test_truncation_respects_a_tiny_limit() -> None:
    once = truncate("z" * 100, 10)
    assert len(once) <= 10
    assert truncate(once, 10) == once


def test_redact_truncates_long_strings_to_the_default_limit() -> None:
    out = redact({"body": "b" * (MAX_CONTEXT_CHARS * 3)})
    assert len(out["body"]) == MAX_CONTEXT_CHARS


def test_redact_is_idempotent() -> None:
    value = {"body": "b" * 10_000, "api_key": "k-abcdef", "keys": {str(i): i for i in range(150)}}
    once = redact(value)
    assert redact(once) == once


def test_redact_is_idempotent_for_long_lists() -> None:
    once = redact({"list": list(range(80))})
    assert redact(once) == once


# --- shapes -------------------------------------------------------------------------------------


def test_nested_structures_are_redacted_at_every_level() -> None:
    value = {
        "request": {
            "headers": {"Authorization": "Bearer abcdefghijk", "Accept": "application/json"},
            "body": {"inputs": ["a cat"], "nested": [{"password": "hunter22"}]},
        }
    }
    assert redact(value) == {
        "request": {
            "headers": {"Authorization": REDACTED, "Accept": "application/json"},
            "body": {"inputs": ["a cat"], "nested": [{"password": REDACTED}]},
        }
    }


def test_bytes_are_summarised_not_dumped() -> None:
    assert redact({"image": b"\x89PNG" + bytes(100)}) == {"image": "<104 bytes>"}
    assert redact(bytearray(3)) == "<3 bytes>"


def test_tuples_and_sets_become_lists() -> None:
    assert redact((1, "a")) == [1, "a"]
    assert redact({"s": frozenset({"only"})}) == {"s": ["only"]}


def test_long_lists_are_capped_with_a_count() -> None:
    out = redact(list(range(60)))
    assert out[:49] == list(range(49))
    assert out[49] == "...[11 more items]"
    assert len(out) == 50


def test_deep_nesting_is_cut_off() -> None:
    value: dict[str, object] = {}
    cursor = value
    for _ in range(20):
        child: dict[str, object] = {}
        cursor["k"] = child
        cursor = child
    assert "[nested too deep]" in json.dumps(redact(value))


def test_non_string_keys_and_unknown_objects_become_json_safe() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "Thing()"

    out = redact({1: Thing(), "ok": True, "n": None, "f": 1.5})
    assert out == {"1": "Thing()", "ok": True, "n": None, "f": 1.5}
    json.dumps(out)


def test_redact_does_not_modify_its_input() -> None:
    value = {"api_key": "k-abcdef", "inner": {"token": "t-abcdef"}}
    redact(value)
    assert value == {"api_key": "k-abcdef", "inner": {"token": "t-abcdef"}}
