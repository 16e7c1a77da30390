#!/usr/bin/env bash
# The one benchmark command (issue 11): tcpdump read rate, `replay` (shipped config: scoring,
# host context, alerts to stdout -> /dev/null) and `flows -o /dev/null` packets/s, each a whole
# process timed wall-clock (best and range of RUNS runs) beside the in-process rate the
# command prints itself (best), with peak RSS, with 1 and 2 workers (`capture.workers`,
# `flows --workers`), on three captures:
#   bench  ../shared/pcaps/bench/merged_staggered.pcap (267,555 packets, real traffic)
#   scale  the bench capture x4, shifted in time (tests/bench/scale.py, into target/bench)
#   flood  2,000,000 spoofed single-SYN flows (tests/bench/synflood.py, into target/bench)
# then bytes per open flow on the flood: (peak RSS - RSS of a tiny replay) / most flows open,
# the workers = 2 / workers = 1 ratio of replay on the scale capture (best wall-clock, and the
# median of ALTERNATING=5 in-turn in-process runs), and each replay's CPU seconds per thread.
# Usage: [BIN=path] tests/bench/run.sh [RUNS=3]. Needs python3, tcpdump, GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
SHARED=${SHARED:-../shared}
BENCH="$SHARED/pcaps/bench/merged_staggered.pcap"
[ -f "$BENCH" ] || { echo "missing input: $BENCH" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time (apt-get install time)" >&2; exit 1; }
# BIN=path: measure that binary instead (e.g. the code before a change, run for run).
if [ -z "${BIN:-}" ]; then
  cargo build --release -q
  BIN=target/release/flowsentry
fi
mkdir -p target/bench
SCALE=target/bench/scale-x4.pcap
FLOOD=target/bench/synflood-2m.pcap
[ -s "$SCALE" ] || python3 tests/bench/scale.py "$BENCH" "$SCALE" 4
[ -s "$FLOOD" ] || python3 tests/bench/synflood.py "$FLOOD" 2000000
# The shipped config with 2 workers (model path made absolute: the copy lives elsewhere).
W2=target/bench/workers2.toml
sed -e 's/^workers = 1$/workers = 2/' -e "s|\"\.\./model/|\"$PWD/model/|" \
  config/flowsentry.toml > "$W2"
grep -q '^workers = 2$' "$W2" || { echo "config/flowsentry.toml: no 'workers = 1' line to change" >&2; exit 1; }
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared machines: expect noise; best of $RUNS and range shown)"

# runs "$@" RUNS times; prints "best_s worst_s max_rss_kb best_in_process_packets_per_s"
timeit() {
  local best="" worst="" rss=0 inproc=0 t r p
  for _ in $(seq "$RUNS"); do
    local t0 t1
    t0=$(date +%s%N)
    /usr/bin/time -f "%M" -o target/bench/time.txt "$@" > /dev/null 2> target/bench/stderr.txt
    t1=$(date +%s%N)
    t=$(python3 -c "print(($t1 - $t0) / 1e9)")
    read -r r < target/bench/time.txt
    # The best run's per-thread CPU seconds (replay logs them), for "where the time went".
    if python3 -c "import sys; sys.exit(0 if float('$t') < float('${best:-inf}') else 1)"; then
      grep -o 'cpu seconds per thread: .*' target/bench/stderr.txt > target/bench/cpu.txt || : > target/bench/cpu.txt
    fi
    best=$(python3 -c "print(min(float('$t'), float('${best:-$t}')))")
    worst=$(python3 -c "print(max(float('$t'), float('${worst:-$t}')))")
    [ "$r" -gt "$rss" ] && rss=$r
    # replay: "= N packets/s"; flows: ", N packets/s"
    p=$(grep -o '[=,] [0-9.]* packets/s' target/bench/stderr.txt | tail -1 | grep -o '[0-9.]*' | head -1 || true)
    inproc=$(python3 -c "print(max(float('${p:-0}'), float('$inproc')))")
  done
  echo "$best $worst $rss $inproc"
}
rate() { python3 -c "print(f'{$1/max($2,1e-3)/1e6:.2f}')"; }
mps() { python3 -c "print(f'{$1/1e6:.2f}')"; }

base=$(timeit $BIN replay tests/data/tcpreplay__test.pcap | cut -d' ' -f3)
cpu_lines=()
echo "M packets/s: whole process wall-clock best (range) [in-process best], peak RSS"
printf '%-6s %9s | %-7s | %-34s | %-34s | %-34s | %-34s\n' capture packets tcpdump \
  "replay, 1 worker" "replay, 2 workers" "flows, 1 worker" "flows, 2 workers"
for name in bench scale flood; do
  case $name in bench) f=$BENCH ;; scale) f=$SCALE ;; flood) f=$FLOOD ;; esac
  pkts=$(tcpdump -r "$f" -w /dev/null 2>&1 >/dev/null | grep -o '[0-9]* packets' | head -1 | cut -d' ' -f1 || true)
  [ -n "$pkts" ] || pkts=$($BIN flows "$f" -o /dev/null 2>&1 | grep -o 'packets read [0-9]*' | grep -o '[0-9]*')
  read -r tb _ _ _ <<< "$(timeit tcpdump -r "$f" -w /dev/null)"
  cells=()
  for cmd in "replay" "replay --config $W2" "flows -o /dev/null" "flows --workers 2 -o /dev/null"; do
    first=${cmd%% *}; rest=""; [ "$cmd" = "$first" ] || rest=${cmd#* }
    # shellcheck disable=SC2086
    read -r b w r p <<< "$(timeit $BIN $first "$f" $rest)"
    [ "$cmd" = replay ] && { rb1=$b; rr1=$r; }
    [ "$cmd" = "replay --config $W2" ] && rb2=$b
    case $cmd in replay*) [ -s target/bench/cpu.txt ] && cpu_lines+=("$name, $cmd: $(cat target/bench/cpu.txt)") ;; esac
    cells+=("$(rate "$pkts" "$b") ($(rate "$pkts" "$w")-$(rate "$pkts" "$b")) [$(mps "$p")] $((r / 1024)) MB")
  done
  printf '%-6s %9s | %-7s | %-34s | %-34s | %-34s | %-34s\n' $name "$pkts" "$(rate "$pkts" "$tb")" "${cells[@]}"
  if [ $name = scale ]; then
    scale_ratio=$(python3 -c "print(f'{$rb1/$rb2:.2f}')")
  fi
  if [ $name = flood ]; then
    open=$(grep -o '^max_flows = [0-9]*' config/flowsentry.toml | grep -o '[0-9]*$')
    [ "$open" -lt "$pkts" ] || open=$pkts
    flood_line="flood: at most $open flows open at once; bytes per open flow (replay RSS - ${base} KB baseline) = $(( (rr1 - base) * 1024 / open )) B; replay / tcpdump read rate = $(python3 -c "print(f'{$tb/$rb1:.2f}')")x (1 worker), $(python3 -c "print(f'{$tb/$rb2:.2f}')")x (2 workers)"
  fi
done
echo "$flood_line"
echo "scale: replay with 2 workers / 1 worker (best wall-clock) = ${scale_ratio}x"
# The same ratio from in-process times of 1 and 2 workers run in turn, median of ALTERNATING
# rounds: a shared VM's CPU speed drifts by tens of percent between runs, and turns spread the
# drift over both sides.
ALTERNATING=${ALTERNATING:-5}
ins() { "$@" 2>&1 >/dev/null | grep -o 'in [0-9.]* s' | tail -1 | cut -d' ' -f2; }
one=(); two=()
for _ in $(seq "$ALTERNATING"); do
  one+=("$(ins $BIN replay "$SCALE")")
  two+=("$(ins $BIN replay --config "$W2" "$SCALE")")
done
python3 - "${one[*]}" "${two[*]}" <<'PY'
import statistics, sys
one = [float(x) for x in sys.argv[1].split()]
two = [float(x) for x in sys.argv[2].split()]
m1, m2 = statistics.median(one), statistics.median(two)
print(f"scale: replay in-process seconds, {len(one)} alternating rounds: 1 worker median {m1:.3f} "
      f"({min(one):.3f}-{max(one):.3f}), 2 workers median {m2:.3f} ({min(two):.3f}-{max(two):.3f}); "
      f"ratio of medians {m1 / m2:.2f}x")
PY
echo "cpu seconds per thread of the best replay run (where the time went):"
for l in "${cpu_lines[@]}"; do echo "  $l"; done
