"""Messages lost when Redis consumers are killed mid-stream: kombu's transport against ours.

N messages on one queue; a consumer process (ack after marking each one done) is started and
`kill -9`ed after 20-150 ms, K times; then every message left unacked is restored and the rest
drained. Prints, for kombu's own Redis transport and for emp_tasks.redis_transport, how many
messages ended neither done nor on a queue - lost. A redis-server is started here.

    .venv/bin/python benchmarks/redis_kills.py [--messages 3000] [--kills 25]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import REDIS_PORT  # noqa: E402  (also pins EMP_* for this process)
from tests.integration.processes import RedisServer  # noqa: E402
from tests.integration.test_redis_transport import kill_consumers_while_they_take  # noqa: E402

TRANSPORTS = {
    "kombu (BRPOP, then HSET)": "kombu.transport.redis:Transport",
    "emp-tasks (one claim script)": "emp_tasks.redis_transport:Transport",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=25)
    args = parser.parse_args()
    server = RedisServer(REDIS_PORT).start()
    try:
        print(f"{args.messages} messages, {args.kills} consumers killed with kill -9")
        for label, transport in TRANSPORTS.items():
            lost = kill_consumers_while_they_take(transport, args.messages, args.kills)
            print(f"  {label:30} lost {lost}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
