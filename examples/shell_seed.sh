#!/usr/bin/env bash
# Seed an application's configuration tree with `coord shell`, then read it back as JSON.
#
#   examples/shell_seed.sh [HOST:PORT]      (default 127.0.0.1:2181)
#
# The commands come from a here-document (stdin is not a terminal, so the shell reads
# its lines); --exit-on-error stops at the first failure and the script stops with it.
# Run it twice: the second run fails at once with "Node already exists: /shell-demo".
set -euo pipefail
server="${1:-127.0.0.1:2181}"

coord shell "$server" --exit-on-error <<'COMMANDS'
# the application's root, its configuration and a directory for its workers
create /shell-demo
create /shell-demo/config '{"color": "blue", "replicas": 3}'
create /shell-demo/workers
create -s /shell-demo/workers/w- host-a
create -s /shell-demo/workers/w- host-b
COMMANDS

# Read it back: one JSON object per command, parsed here with Python (or jq).
coord shell "$server" --json -c "get /shell-demo/config" -c "ls /shell-demo/workers" |
    python3 -c '
import json, sys
config, workers = (json.loads(line) for line in sys.stdin)
settings = json.loads(config["data"])
print("color=%s replicas=%s" % (settings["color"], settings["replicas"]))
print("workers:", ", ".join(workers["children"]))
'

coord shell "$server" -c "tree /shell-demo" -c "deleteall /shell-demo"
