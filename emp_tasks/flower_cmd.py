"""`emp-tasks flower`: Flower against this project's broker, on loopback unless it asks for a login.

The decisions (is the address loopback, is authentication configured, is the port valid) are pure
functions over the command's options and the environment, so they are tested without a Flower.
The command itself only prints a refusal or replaces its process with Flower's.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import click

__all__ = ["flower"]

EXIT_REFUSED = 2
BASIC_AUTH = "FLOWER_BASIC_AUTH"
BASIC_AUTH_FORMAT = f"{BASIC_AUTH} must be user:pass[,user2:pass2]"
# Flower reads these itself (FLOWER_* environment variables become its options); a login through
# OAuth needs all of them, or the login page is a 404 and nobody gets in.
OAUTH_SETTINGS = (
    "FLOWER_AUTH",
    "FLOWER_AUTH_PROVIDER",
    "FLOWER_OAUTH2_KEY",
    "FLOWER_OAUTH2_SECRET",
    "FLOWER_OAUTH2_REDIRECT_URI",
)


class FlowerConfigError(ValueError):
    """A setting that stops Flower from starting: one line, naming the setting, no secrets."""


@dataclass(frozen=True)
class FlowerPlan:
    """The process to exec: Flower's argv and the environment it reads its authentication from."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)  # holds the passwords: keep them out of reprs
    authenticated: bool


def parse_basic_auth(raw: str) -> list[tuple[str, str]]:
    """`user:pass[,user2:pass2]` as (user, password) pairs; FlowerConfigError when malformed."""
    if not raw.strip():
        raise FlowerConfigError(f"{BASIC_AUTH_FORMAT} (it is set but empty)")
    pairs = []
    for number, entry in enumerate(raw.split(","), start=1):
        # Messages name the entry by position only: its text may be a password typed without user.
        user, colon, password = entry.strip().partition(":")
        if not entry.strip():
            problem = "is empty"
        elif not colon:
            problem = "has no colon"
        elif not user:
            problem = "has an empty user"
        elif not password:
            problem = "has an empty password"
        else:
            pairs.append((user, password))
            continue
        raise FlowerConfigError(f"{BASIC_AUTH_FORMAT} (entry {number} {problem})")
    return pairs


def parse_port(raw: str | int) -> int:
    """The TCP port to listen on, 1-65535; FlowerConfigError otherwise."""
    try:
        port = int(str(raw).strip())
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise FlowerConfigError(f"--port must be a whole number 1-65535, got {str(raw)[:20]!r}")
    return port


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; an empty address is every interface."""
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip()).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to a public interface


def oauth_configured(env: Mapping[str, str]) -> bool:
    """Whether all of Flower's OAuth settings are set; FlowerConfigError when only some are."""
    present = [name for name in OAUTH_SETTINGS if env.get(name, "").strip()]
    if not present:
        return False
    missing = [name for name in OAUTH_SETTINGS if name not in present]
    if missing:
        raise FlowerConfigError(
            f"Flower's OAuth login needs {', '.join(OAUTH_SETTINGS)}; missing: {', '.join(missing)}"
        )
    # Flower's own rule, so a pattern it would reject at start-up is refused here, in one line.
    from flower.utils.authentication import validate_auth_option

    if not validate_auth_option(env["FLOWER_AUTH"]):
        raise FlowerConfigError(
            "FLOWER_AUTH must be an email, emails joined by |, or one * before the @"
        )
    return True


def plan_flower(
    address: str, port: str | int, env: Mapping[str, str], python: str = sys.executable
) -> FlowerPlan:
    """Flower's argv and environment for these options; FlowerConfigError on bad input."""
    number = parse_port(port)
    child = dict(env)
    basic = BASIC_AUTH in env
    if basic:
        # Re-exported as parsed, so Flower compares exactly the pairs validated here.
        child[BASIC_AUTH] = ",".join(f"{u}:{p}" for u, p in parse_basic_auth(env[BASIC_AUTH]))
    authenticated = oauth_configured(env) or basic
    if not authenticated and not is_loopback(address):
        raise FlowerConfigError(
            f"--address {address!r} is not loopback: set {BASIC_AUTH}=user:pass[,user2:pass2] "
            "or Flower's OAuth settings (FLOWER_AUTH, FLOWER_AUTH_PROVIDER, FLOWER_OAUTH2_*), "
            "or use --address 127.0.0.1"
        )
    # Only the address and port go on the command line: argv is readable by anyone through `ps`.
    argv = (python, "-m", "celery", "-A", "emp_tasks", "flower")
    return FlowerPlan(
        argv=(*argv, f"--address={address}", f"--port={number}"),
        env=child,
        authenticated=authenticated,
    )


@click.command()
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on; other than loopback only with authentication configured.",
)
@click.option("--port", default="5555", show_default=True, help="TCP port, 1-65535.")
def flower(address: str, port: str) -> None:
    """Start Flower (monitoring UI) against this project's broker.

    Authentication: FLOWER_BASIC_AUTH=user:pass[,user2:pass2], or Flower's OAuth settings
    (FLOWER_AUTH, FLOWER_AUTH_PROVIDER, FLOWER_OAUTH2_KEY, FLOWER_OAUTH2_SECRET,
    FLOWER_OAUTH2_REDIRECT_URI). FLOWER_COOKIE_SECRET keeps login cookies valid across restarts.
    """
    try:
        plan = plan_flower(address, port, os.environ)
    except FlowerConfigError as exc:
        click.echo(f"emp-tasks flower: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
    sys.stdout.flush()
    sys.stderr.flush()
    # Exec rather than a child process: signals from a terminal or supervisor reach Flower itself.
    os.execve(plan.argv[0], list(plan.argv), dict(plan.env))
