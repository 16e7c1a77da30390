#!/usr/bin/env bash
# Rebuilds the shipped host model (model/host-forest.json) from benign shared captures and checks
# it is identical to the committed one. Inputs: $SHARED_PCAPS (default ../shared/pcaps).
# The training captures: the bench merge of ~2,100 public test captures and the encapsulation
# and format samples; correctness/ and attack/ are held out to judge the model.
set -euo pipefail
cd "$(dirname "$0")/.."
P=${SHARED_PCAPS:-../shared/pcaps}
[ -f "$P/bench/merged_staggered.pcap" ] || { echo "missing input: $P/bench/merged_staggered.pcap" >&2; exit 1; }
cargo build --release --quiet
out=${1:-target/host-forest.rebuilt.json}
inputs=("$P/bench/merged_staggered.pcap" "$P"/encap/*.pcap* "$P/formats/nfstream__alexa-app.pcapng" "$P/formats/nfstream__ps_vue.pcap")
target/release/flowsentry train-host "${inputs[@]}" -o "$out" 2>&1 | grep -v ': 0 host rows$'
# Paths in the provenance differ between machines: compare everything else.
strip() { python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); [f.update(path=f["path"].split("/pcaps/")[-1]) for f in m["provenance"]["training_files"]]; print(json.dumps(m, sort_keys=True))' "$1"; }
if [ "$out" != model/host-forest.json ]; then
  if [ "$(strip "$out")" = "$(strip model/host-forest.json)" ]; then
    echo "model/host-forest.json is reproducible from $P"
  else
    echo "model/host-forest.json differs from a rebuild ($out)" >&2
    exit 1
  fi
fi
