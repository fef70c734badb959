"""Run a sandbox emulator as a process.

    python -m emp_tasks.sandbox glif --host 127.0.0.1 --port 8765 --token sandbox-token

Prints the base URL on one line (so a parent process can read it, even with ``--port 0``),
then serves until SIGINT or SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from emp_tasks.sandbox.a1111 import A1111Emulator
from emp_tasks.sandbox.comfyui import ComfyUIEmulator
from emp_tasks.sandbox.gemini import GeminiEmulator
from emp_tasks.sandbox.glif import GlifEmulator
from emp_tasks.sandbox.ollama import OllamaEmulator
from emp_tasks.sandbox.openai import OpenAIEmulator
from emp_tasks.sandbox.server import EmulatorServer

__all__ = ["EMULATORS", "main"]

EMULATORS: dict[str, Callable[..., EmulatorServer]] = {
    "a1111": A1111Emulator,
    "comfyui": ComfyUIEmulator,
    "gemini": GeminiEmulator,
    "glif": GlifEmulator,
    "ollama": OllamaEmulator,
    "openai": OpenAIEmulator,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emp_tasks.sandbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("emulator", choices=sorted(EMULATORS), help="which provider to emulate")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    parser.add_argument(
        "--token",
        action="append",
        dest="tokens",
        metavar="TOKEN",
        help="accepted API token (repeatable; default sandbox-token)",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds of delay added to every provider call"
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        metavar="N",
        help="answer calls beyond N a second with 429 + Retry-After (default 0: no limit)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, serve until SIGINT/SIGTERM; returns the exit code."""
    args = _parser().parse_args(argv)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    emulator = EMULATORS[args.emulator](
        host=args.host,
        port=args.port,
        tokens=args.tokens or ["sandbox-token"],
        latency=args.latency,
    )
    emulator.set_rate_limit(args.rate_limit)
    with emulator:
        print(emulator.url, flush=True)
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
