#!/usr/bin/env bash
# Starts a local RocketMQ cluster on defaults: mqnamesrv on 9876 and mqbroker on 10911
# (VIP port 10909, store in ./local-store). Ctrl-C stops both (the broker unregisters and
# flushes). Extra arguments go to mqbroker, e.g. `-c broker.conf`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rmq-target}"
cargo build --release -p rmq-nameserver -p rmq-broker -p rmq-tools --bins
bin="$CARGO_TARGET_DIR/release"
store="${RMQ_LOCAL_STORE:-$PWD/local-store}"
mkdir -p "$store"
conf="$store/broker.conf"
if [ ! -f "$conf" ]; then
  cat > "$conf" <<CONF
brokerClusterName=DefaultCluster
brokerName=broker-a
brokerId=0
brokerIP1=127.0.0.1
listenPort=10911
storePathRootDir=$store
namesrvAddr=127.0.0.1:9876
CONF
fi
"$bin/mqnamesrv" -c <(printf 'kvConfigPath=%s/namesrv/kvConfig.json\nconfigStorePath=%s/namesrv/namesrv.properties\n' "$store" "$store") &
ns=$!
broker=
trap 'kill -TERM $broker $ns 2>/dev/null; wait $broker $ns 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/9876) 2>/dev/null && break; sleep 0.1; done
"$bin/mqbroker" -c "$conf" "$@" &
broker=$!
echo "local cluster: name server 127.0.0.1:9876, broker 127.0.0.1:10911, store $store (Ctrl-C to stop)"
wait $broker
