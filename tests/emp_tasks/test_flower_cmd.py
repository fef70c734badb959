"""`emp-tasks flower` decisions: auth parsing, loopback, refusals and the planned Flower process."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from emp_tasks import flower_cmd
from emp_tasks.flower_cmd import (
    FlowerConfigError,
    is_loopback,
    oauth_configured,
    parse_basic_auth,
    parse_port,
    plan_flower,
)

SECRET = "pw-9f3kq"  # distinctive, so a leak into a message is easy to spot
OAUTH = {
    "FLOWER_AUTH": ".*@example.com",
    "FLOWER_AUTH_PROVIDER": "flower.views.auth.GithubLoginHandler",
    "FLOWER_OAUTH2_KEY": "key",
    "FLOWER_OAUTH2_SECRET": SECRET,
    "FLOWER_OAUTH2_REDIRECT_URI": "https://flower.example.com/login",
}


@pytest.mark.parametrize(
    ("raw", "pairs"),
    [
        (f"alice:{SECRET}", [("alice", SECRET)]),
        (f"alice:{SECRET},bob:two", [("alice", SECRET), ("bob", "two")]),
        (f" alice:{SECRET} , bob:two ", [("alice", SECRET), ("bob", "two")]),
        # the password may hold colons: Basic auth splits user from password at the first one
        ("alice:a:b:c", [("alice", "a:b:c")]),
    ],
)
def test_basic_auth_parses_into_user_password_pairs(raw: str, pairs: list[tuple[str, str]]) -> None:
    assert parse_basic_auth(raw) == pairs


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "set but empty"),
        ("   ", "set but empty"),
        (SECRET, "entry 1 has no colon"),
        (f":{SECRET}", "entry 1 has an empty user"),
        ("alice:", "entry 1 has an empty password"),
        (f"alice:{SECRET},", "entry 2 is empty"),
        (f"alice:{SECRET},,bob:x", "entry 2 is empty"),
        (f"alice:{SECRET},bob{SECRET}", "entry 2 has no colon"),
    ],
)
def test_malformed_basic_auth_is_refused_without_echoing_it(raw: str, problem: str) -> None:
    with pytest.raises(FlowerConfigError) as caught:
        parse_basic_auth(raw)
    message = str(caught.value)
    assert message.startswith("FLOWER_BASIC_AUTH must be user:pass[,user2:pass2]")
    assert problem in message
    assert SECRET not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("0.0.0.0", False),
        ("", False),  # Flower's empty address is every interface
        ("::", False),
        ("10.0.0.5", False),
        ("128.0.0.1", False),
        ("flower.internal", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_is_127_slash_8_ipv6_one_and_localhost(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


@pytest.mark.parametrize(("raw", "port"), [("1", 1), ("5555", 5555), (" 80 ", 80), (65535, 65535)])
def test_ports_in_range_are_accepted(raw: str | int, port: int) -> None:
    assert parse_port(raw) == port


@pytest.mark.parametrize("raw", ["0", "65536", "-1", "abc", "", "55.5", 0])
def test_ports_out_of_range_or_not_numbers_are_refused(raw: str | int) -> None:
    with pytest.raises(FlowerConfigError, match=r"^--port must be a whole number 1-65535"):
        parse_port(raw)


def test_oauth_counts_only_when_every_setting_is_present() -> None:
    assert oauth_configured({}) is False
    assert oauth_configured(OAUTH) is True
    partial = {k: v for k, v in OAUTH.items() if k != "FLOWER_OAUTH2_KEY"}
    with pytest.raises(FlowerConfigError, match=r"missing: FLOWER_OAUTH2_KEY$") as caught:
        oauth_configured(partial)
    assert SECRET not in str(caught.value)


def test_oauth_pattern_flower_would_reject_is_refused_up_front() -> None:
    with pytest.raises(FlowerConfigError, match=r"^FLOWER_AUTH must be"):
        oauth_configured({**OAUTH, "FLOWER_AUTH": "*@*.com"})


@pytest.mark.parametrize(
    ("address", "env", "authenticated"),
    [
        ("127.0.0.1", {}, False),
        ("localhost", {}, False),
        ("::1", {}, False),
        ("0.0.0.0", {"FLOWER_BASIC_AUTH": f"alice:{SECRET}"}, True),
        ("0.0.0.0", OAUTH, True),
        ("", {"FLOWER_BASIC_AUTH": f"alice:{SECRET}", **OAUTH}, True),
        ("127.0.0.1", {"FLOWER_BASIC_AUTH": f"alice:{SECRET}"}, True),
    ],
)
def test_flower_is_planned_with_only_address_and_port_on_its_command_line(
    address: str, env: dict[str, str], authenticated: bool
) -> None:
    plan = plan_flower(address, "5601", {"PATH": "/bin", **env}, python="/venv/bin/python")
    assert plan.argv == (
        "/venv/bin/python",
        *("-m", "celery", "-A", "emp_tasks", "flower"),
        f"--address={address}",
        "--port=5601",
    )
    assert plan.authenticated is authenticated
    assert not any(SECRET in arg for arg in plan.argv)
    assert SECRET not in repr(plan)
    assert plan.env["PATH"] == "/bin"
    for name, value in env.items():  # Flower reads its auth from the environment
        assert plan.env[name] == value


def test_basic_auth_reaches_flower_normalised_and_cookie_secret_passes_through() -> None:
    env = {"FLOWER_BASIC_AUTH": f" alice:{SECRET} ,bob:two", "FLOWER_COOKIE_SECRET": "c00kie"}
    plan = plan_flower("127.0.0.1", 5555, env)
    assert plan.env["FLOWER_BASIC_AUTH"] == f"alice:{SECRET},bob:two"
    assert plan.env["FLOWER_COOKIE_SECRET"] == "c00kie"


@pytest.mark.parametrize(
    ("address", "port", "env", "setting"),
    [
        ("0.0.0.0", "5555", {}, "--address '0.0.0.0' is not loopback"),
        ("", "5555", {}, "--address '' is not loopback"),
        ("10.1.2.3", "5555", {"FLOWER_BASIC_AUTH": ""}, "FLOWER_BASIC_AUTH must be"),
        ("127.0.0.1", "5555", {"FLOWER_BASIC_AUTH": f"alice{SECRET}"}, "FLOWER_BASIC_AUTH must be"),
        ("0.0.0.0", "5555", {"FLOWER_AUTH": "a@example.com"}, "Flower's OAuth login needs"),
        ("127.0.0.1", "99999", {}, "--port must be"),
    ],
)
def test_bad_input_is_refused_naming_the_setting(
    address: str, port: str, env: dict[str, str], setting: str
) -> None:
    with pytest.raises(FlowerConfigError) as caught:
        plan_flower(address, port, env)
    assert str(caught.value).startswith(setting)
    assert SECRET not in str(caught.value)


def test_command_refuses_in_one_line_and_never_starts_flower(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[object] = []
    monkeypatch.setattr(os, "execve", lambda *args: started.append(args))
    monkeypatch.setenv("FLOWER_BASIC_AUTH", f"alice:{SECRET},")
    result = CliRunner().invoke(flower_cmd.flower, ["--address", "0.0.0.0"])
    assert result.exit_code == flower_cmd.EXIT_REFUSED
    assert result.output.count("\n") == 1
    assert result.output.startswith("emp-tasks flower: FLOWER_BASIC_AUTH must be")
    assert SECRET not in result.output
    assert started == []


def test_command_execs_flower_with_the_planned_argv_and_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(os, "execve", lambda *args: started.append(args))
    monkeypatch.setenv("FLOWER_BASIC_AUTH", f"alice:{SECRET}")
    result = CliRunner().invoke(flower_cmd.flower, ["--address", "0.0.0.0", "--port", "5602"])
    assert result.exit_code == 0, result.output
    [(path, argv, env)] = started
    assert path == argv[0]
    assert argv[-2:] == ["--address=0.0.0.0", "--port=5602"]
    assert env["FLOWER_BASIC_AUTH"] == f"alice:{SECRET}"
