#!/usr/bin/env bash
# Live capture rate benchmark on the machine's own test hosts: two network namespaces joined by
# a veth pair. `flowsentry run` captures on one end; tcpreplay sends a capture into the other at
# increasing packet rates. Prints, per rate, packets sent, received, kernel drops and flows.
# Needs root. Usage: tests/bench/live_rate.sh [CAPTURE] [RATES...]
set -euo pipefail
cd "$(dirname "$0")/../.."
pcap=${1:-../shared/pcaps/bench/merged_staggered.pcap}
shift || true
rates=${*:-"25000 50000 100000 200000 400000 topspeed"}
[ -f "$pcap" ] || { echo "missing input: $pcap" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, capture)" >&2; exit 1; }
bin=$(pwd)/target/release/flowsentry
[ -x "$bin" ] || cargo build --release -q
a=fsrateA$$; b=fsrateB$$
work=$(mktemp -d)
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ip netns add "$a"; ip netns add "$b"
ip link add fsr0 netns "$a" type veth peer name fsr1 netns "$b"
for ns in "$a" "$b"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
done
ip -n "$a" link set fsr0 mtu 65535 up
ip -n "$b" link set fsr1 mtu 65535 up
cat > "$work/rate.toml" <<CFG
[capture]
interface = "fsr0"
buffer_size_mb = 64
[model]
path = "$(pwd)/model/forest.json"
[[alerts.sinks]]
type = "json"
path = "$work/alerts.json"
[stats]
interval_s = 0
CFG
printf '%-10s %10s %10s %10s %10s %8s\n' rate sent received dropped flows seconds
for rate in $rates; do
  ip netns exec "$a" "$bin" run --config "$work/rate.toml" 2> "$work/log" &
  pid=$!
  for _ in $(seq 100); do grep -q "capturing on" "$work/log" && break; sleep 0.1; done
  if [ "$rate" = topspeed ]; then opt=(--topspeed); else opt=(--pps="$rate"); fi
  start=$(date +%s.%N)
  sent=$(ip netns exec "$b" tcpreplay -i fsr1 "${opt[@]}" "$pcap" 2>&1 | awk '/Successful packets/ {print $3}')
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  sleep 1
  kill -TERM "$pid"; wait "$pid" || true
  line=$(grep "final stats" "$work/log")
  field() { echo "$line" | grep -o "$1=[0-9]*" | head -1 | cut -d= -f2; }
  printf '%-10s %10s %10s %10s %10s %8.2f\n' "$rate" "$sent" "$(field kernel_received)" "$(field kernel_dropped)" "$(field scored)" "$secs"
done
