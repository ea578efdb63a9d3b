"""Register one service instance in coord until stopped (SIGINT/SIGTERM).

    python examples/munin_config/register.py --servers 127.0.0.1:2181 --service www \
        --address 10.0.0.7:80

The instance is an ephemeral node under /services/www: it disappears when this process
exits -- at once on a clean exit, after the session timeout if the process is killed.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Sequence

import anyio

import coord
from coord.recipes import ServiceRegistry


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", required=True, help="coord/ZooKeeper connect string")
    parser.add_argument("--service", required=True, help="the service's name, e.g. www")
    parser.add_argument("--address", required=True, help="this instance's HOST:PORT")
    parser.add_argument("--root", default="/services", help="the registry's root node")
    parser.add_argument("--session-timeout", type=float, default=10.0, help="seconds")
    args = parser.parse_args(argv)
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with coord.connect(args.servers, session_timeout=args.session_timeout) as client:
            registry = ServiceRegistry(client, root=args.root)
            async with registry.register(args.service, args.address) as instance:
                print(f"registered {args.service} {instance.address} as {instance.id}", flush=True)
                async for signum in signals:
                    print(f"{signal.Signals(signum).name}: leaving", flush=True)
                    break


if __name__ == "__main__":
    anyio.run(main)
