"""``coord-token keygen`` and ``coord-token mint``: keys and tokens for the token scheme."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from coord_token_auth._token import generate_key, mint


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coord-token")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("keygen", help="print a new private key and its public key")
    mint_parser = commands.add_parser("mint", help="print a token for an identity")
    mint_parser.add_argument("--key", required=True, help="the base64url private key")
    mint_parser.add_argument("--lifetime", type=float, default=3600.0, help="seconds")
    mint_parser.add_argument("subject", help="the identity, e.g. alice")
    args = parser.parse_args(argv)
    if args.command == "keygen":
        private, public = generate_key()
        print(f"private_key = {private}\npublic_key = {public}")
        return 0
    try:
        print(mint(args.key, args.subject, lifetime=args.lifetime))
    except ValueError as exc:
        print(f"coord-token: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
