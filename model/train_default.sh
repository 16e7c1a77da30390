#!/usr/bin/env bash
# Retrains the shipped model from ../shared/data and evaluates it on rows it never saw.
#   model/train_default.sh            retrain, evaluate, and check the result equals model/forest.json
#   model/train_default.sh --install  retrain, evaluate, and replace model/forest.json + docs/eval/
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SHARED_DATA:-../shared/data}
if [ ! -d "$shared/cicids2017-improved" ]; then
  echo "missing input: $shared/cicids2017-improved (the shared labeled CSVs; set SHARED_DATA)" >&2
  exit 1
fi
out=target/model-build
mkdir -p "$out"
python3 model/build_splits.py "$shared" "$out"
cargo build --release -q
bin=target/release/flowsentry
$bin train "$out/train.csv" -o "$out/forest.json" --feature-set default --transform none \
  --trees 100 --sample-size 256 --seed 42 --benign-label BENIGN
$bin evaluate --model "$out/forest.json" "$out/val.csv" --tune-threshold f1 > "$out/val.txt"
eval_dir=$out/eval
[ "${1:-}" = "--install" ] && eval_dir=docs/eval
mkdir -p "$eval_dir/wednesday-mix" "$eval_dir/all-classes"
$bin evaluate --model "$out/forest.json" "$out/test.csv" --out "$eval_dir/wednesday-mix" | tee "$eval_dir/wednesday-mix/metrics.txt"
$bin evaluate --model "$out/forest.json" "$out/test_all.csv" --out "$eval_dir/all-classes" | tee "$eval_dir/all-classes/metrics.txt"
if [ "${1:-}" = "--install" ]; then
  cp "$out/forest.json" model/forest.json
  echo "installed model/forest.json"
else
  # The shipped model must be exactly what this recipe produces (the date and notes aside).
  python3 - "$out/forest.json" model/forest.json <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for m in (a, b):
    m["provenance"].pop("created", None)
if a != b:
    sys.exit("model/forest.json differs from what model/train_default.sh produces: run it with --install")
print("model/forest.json is reproducible from ../shared/data")
PY
fi
