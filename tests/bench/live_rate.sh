#!/usr/bin/env bash
# Live capture rate benchmark on the machine's own test hosts: two network namespaces joined by
# a veth pair (MTU 65535). `flowsentry run` (shipped capture defaults, `capture.workers` = each
# of WORKERS) captures on one end; tcpreplay sends a capture into the other, for about
# SECONDS s per rate (--limit) or the whole capture LOOPS times at --topspeed; "Nx" runs N
# tcpreplay processes at --topspeed at once (more than one tcpreplay can push). Prints, per
# worker count and rate: packets sent, received by the kernel, kernel drops (and % of packets received, which counts them), flows
# scored, seconds and the rate achieved.
# Needs root and tcpreplay. Usage: tests/bench/live_rate.sh [CAPTURE] [RATES...]
#   env: WORKERS="1 2" SECONDS_PER_RATE=6 LOOPS=2 IMMEDIATE=true (the pre-issue-11 default)
set -euo pipefail
cd "$(dirname "$0")/../.."
pcap=${1:-target/bench/scale-x4.pcap}
shift || true
rates=${*:-"100000 200000 topspeed 2x"}
workers_list=${WORKERS:-"1 2"}
secs_per_rate=${SECONDS_PER_RATE:-6}
loops=${LOOPS:-2}
if [ ! -f "$pcap" ] && [ "$pcap" = target/bench/scale-x4.pcap ]; then
  mkdir -p target/bench
  python3 tests/bench/scale.py ../shared/pcaps/bench/merged_staggered.pcap "$pcap" 4
fi
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
echo "capture $pcap; immediate_mode = ${IMMEDIATE:-false}; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-7s %-9s %10s %10s %8s %8s %8s %7s %9s\n' workers rate sent received dropped 'drop%' flows seconds 'sent/s'
for workers in $workers_list; do
  cat > "$work/rate.toml" <<CFG
[capture]
interface = "fsr0"
workers = $workers
immediate_mode = ${IMMEDIATE:-false}
[model]
path = "$(pwd)/model/forest.json"
[[alerts.sinks]]
type = "json"
path = "$work/alerts.json"
[stats]
interval_s = 0
CFG
  for rate in $rates; do
    ip netns exec "$a" "$bin" run --config "$work/rate.toml" 2> "$work/log" &
    pid=$!
    for _ in $(seq 100); do grep -q "capturing on" "$work/log" && break; sleep 0.1; done
    start=$(date +%s.%N)
    case $rate in
      topspeed) sent=$(ip netns exec "$b" tcpreplay -i fsr1 --topspeed --loop="$loops" "$pcap" 2>&1 | awk '/Successful packets/ {print $3}') ;;
      *x)
        n=${rate%x}
        for i in $(seq "$n"); do
          ip netns exec "$b" tcpreplay -i fsr1 --topspeed "$pcap" > "$work/tr$i" 2>&1 &
        done
        wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
        sent=$(cat "$work"/tr* | awk '/Successful packets/ {s += $3} END {print s}')
        rm -f "$work"/tr* ;;
      *) sent=$(ip netns exec "$b" tcpreplay -i fsr1 --pps="$rate" --limit=$((rate * secs_per_rate)) "$pcap" 2>&1 | awk '/Successful packets/ {print $3}') ;;
    esac
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    sleep 1
    kill -TERM "$pid"; wait "$pid" || true
    line=$(grep "final stats" "$work/log")
    field() { echo "$line" | grep -o "$1=[0-9]*" | head -1 | cut -d= -f2; }
    recv=$(field kernel_received); drop=$(field kernel_dropped)
    printf '%-7s %-9s %10s %10s %8s %8s %8s %7.2f %9.0f\n' "$workers" "$rate" "$sent" "$recv" "$drop" \
      "$(python3 -c "print(f'{100 * $drop / max($recv, 1):.3f}')")" "$(field scored)" "$secs" \
      "$(echo "$sent / $secs" | bc -l)"
  done
done
