#!/usr/bin/env bash
# Used by `make stop`: stop the calico-node that `make quickstart` started.
set -euo pipefail
pidfile=$1/calico-node.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  pid=$(cat "$pidfile")
  kill "$pid"
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  echo "stopped calico-node (pid $pid); the data is kept in $1/etcd"
else
  echo "calico-node is not running"
fi
rm -f "$pidfile"
