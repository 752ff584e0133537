#!/usr/bin/env bash
# Used by `make quickstart`: start calico-node with its embedded datastore in the
# background (or reuse the one already running), apply the example resources
# and show them with calicoctl.
set -euo pipefail
bin=$1 run_dir=$2 listen=$3 peer=$4
mkdir -p "$run_dir"
pidfile=$run_dir/calico-node.pid
log=$run_dir/calico-node.log
export ETCD_ENDPOINTS="http://$listen"
unset DATASTORE_TYPE CALICO_DATASTORE_TYPE

if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "==> calico-node already running (pid $(cat "$pidfile")), datastore at $ETCD_ENDPOINTS"
else
  echo "==> Starting calico-node with the embedded datastore on $listen (data in $run_dir/etcd, log in $log)"
  nohup "$bin/calico-node" --embedded-datastore --datastore-only \
    --etcd-listen-client "$listen" --etcd-listen-peer "$peer" \
    --etcd-data-dir "$run_dir/etcd" >"$log" 2>&1 &
  echo $! >"$pidfile"
  for i in $(seq 1 100); do
    if "$bin/calicoctl" get clusterinformation default >/dev/null 2>&1; then break; fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "error: calico-node exited; its log ($log) says:" >&2; tail -20 "$log" >&2; exit 1
    fi
    sleep 0.2
  done
  "$bin/calicoctl" get clusterinformation default >/dev/null || { echo "error: datastore not ready after 20s; see $log" >&2; exit 1; }
fi

echo "==> calicoctl apply -f examples/quickstart.yaml"
"$bin/calicoctl" apply -f examples/quickstart.yaml
for kind in ippools tiers globalnetworksets globalnetworkpolicies; do
  echo "==> calicoctl get $kind -o wide"
  "$bin/calicoctl" get "$kind" -o wide
done
echo "==> calicoctl get networkpolicies --all-namespaces"
"$bin/calicoctl" get networkpolicies --all-namespaces -o wide
cat <<MSG

The datastore keeps running in the background. Go on with calicoctl:
  export ETCD_ENDPOINTS=$ETCD_ENDPOINTS PATH=$bin:\$PATH
  calicoctl get globalnetworkpolicy allow-dns -o yaml
Stop it with: make stop
MSG
