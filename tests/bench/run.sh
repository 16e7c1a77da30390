#!/usr/bin/env bash
# The one benchmark command (issue 11): tcpdump read rate, `replay` (shipped config: scoring,
# alerts to stdout -> /dev/null) and `flows -o /dev/null` packets/s, each a whole process timed
# wall-clock (best and range of RUNS runs), with peak RSS, on three captures:
#   bench  ../shared/pcaps/bench/merged_staggered.pcap (267,555 packets, real traffic)
#   scale  the bench capture x4, shifted in time (tests/bench/scale.py, into target/bench)
#   flood  2,000,000 spoofed single-SYN flows (tests/bench/synflood.py, into target/bench)
# and bytes per open flow on the flood: (peak RSS - RSS of a tiny replay) / most flows open.
# Usage: tests/bench/run.sh [RUNS=3]. Needs python3, tcpdump, GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
SHARED=${SHARED:-../shared}
BENCH="$SHARED/pcaps/bench/merged_staggered.pcap"
[ -f "$BENCH" ] || { echo "missing input: $BENCH" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time (apt-get install time)" >&2; exit 1; }
cargo build --release -q
BIN=target/release/flowsentry
mkdir -p target/bench
SCALE=target/bench/scale-x4.pcap
FLOOD=target/bench/synflood-2m.pcap
[ -s "$SCALE" ] || python3 tests/bench/scale.py "$BENCH" "$SCALE" 4
[ -s "$FLOOD" ] || python3 tests/bench/synflood.py "$FLOOD" 2000000
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared machines: expect noise; best of $RUNS and range shown)"

# runs "$@" RUNS times; prints "best_s worst_s max_rss_kb"
timeit() {
  local best="" worst="" rss=0 t r
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %M" -o target/bench/time.txt "$@" > /dev/null 2> target/bench/stderr.txt
    read -r t r < target/bench/time.txt
    best=$(python3 -c "print(min(float('$t'), float('${best:-$t}')))")
    worst=$(python3 -c "print(max(float('$t'), float('${worst:-$t}')))")
    [ "$r" -gt "$rss" ] && rss=$r
  done
  echo "$best $worst $rss"
}
rate() { python3 -c "print(f'{$1/max($2,1e-3)/1e6:.2f}')"; }

base=$(timeit $BIN replay tests/data/tcpreplay__test.pcap | cut -d' ' -f3)
printf '%-6s %10s | %-18s | %-30s | %-30s\n' capture packets "tcpdump -r M/s" "replay M/s (range) RSS" "flows M/s (range) RSS"
for name in bench scale flood; do
  case $name in bench) f=$BENCH ;; scale) f=$SCALE ;; flood) f=$FLOOD ;; esac
  pkts=$(tcpdump -r "$f" -w /dev/null 2>&1 >/dev/null | grep -o '[0-9]* packets' | head -1 | cut -d' ' -f1 || true)
  [ -n "$pkts" ] || pkts=$($BIN flows "$f" -o /dev/null 2>&1 | grep -o 'packets read [0-9]*' | grep -o '[0-9]*')
  read -r tb _ _ <<< "$(timeit tcpdump -r "$f" -w /dev/null)"
  read -r rb rw rr <<< "$(timeit $BIN replay "$f")"
  read -r fb fw fr <<< "$(timeit $BIN flows "$f" -o /dev/null)"
  printf '%-6s %10s | %-18s | %-30s | %-30s\n' $name "$pkts" "$(rate "$pkts" "$tb")" \
    "$(rate "$pkts" "$rb") ($(rate "$pkts" "$rw")-$(rate "$pkts" "$rb")) $((rr / 1024)) MB" \
    "$(rate "$pkts" "$fb") ($(rate "$pkts" "$fw")-$(rate "$pkts" "$fb")) $((fr / 1024)) MB"
  if [ $name = flood ]; then
    open=$(grep -o 'max_flows = [0-9]*' config/flowsentry.toml | grep -o '[0-9]*$')
    [ "$open" -lt "$pkts" ] || open=$pkts
    echo "flood: at most $open flows open at once; bytes per open flow (replay RSS - ${base} KB baseline) = $(( (rr - base) * 1024 / open )) B"
    echo "flood: replay / tcpdump read rate = $(python3 -c "print(f'{$tb/$rb:.2f}')")x"
  fi
done
