#!/usr/bin/env python3
"""scikit-learn parity: fit an IsolationForest with scikit-learn on a shared labeled CSV,
export it with model/export_sklearn.py, score the same CSV with `flowsentry score`, and check
every row's score equals -score_samples to 1e-9.

Usage: sklearn_parity.py FLOWSENTRY_BINARY SHARED_DATA_DIR WORK_DIR [--fixture OUT_DIR]
With --fixture, also writes a small exported model and sklearn's scores for the cargo test.
"""
import csv
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "model"))
from export_sklearn import clean, export  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.ensemble import IsolationForest  # noqa: E402

FEATURES = ["Flow Duration", "Total Fwd Packet", "Total Bwd packets", "Total Length of Fwd Packet",
            "Fwd Packet Length Max", "Flow Bytes/s", "Flow Packets/s", "Flow IAT Mean", "Flow IAT Std",
            "Fwd IAT Min", "Bwd Packet Length Mean", "Packet Length Variance", "FWD Init Win Bytes",
            "Bwd Init Win Bytes", "Idle Max", "Active Mean", "Down/Up Ratio", "SYN Flag Count"]


def load(paths):
    header, rows = None, []
    for p in paths:
        with open(p, newline="") as fh:
            r = csv.reader(fh)
            h = next(r)
            header = header or h
            rows += list(r)
    return header, rows


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    binary, shared, work = sys.argv[1:4]
    fixture = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--fixture" else None
    src = os.path.join(shared, "cicids2017-improved")
    files = [os.path.join(src, f) for f in ("BENIGN_5000.csv", "DoS_Hulk_5000.csv", "Portscan_5000.csv")]
    for f in files:
        if not os.path.exists(f):
            sys.exit(f"missing input: {f}")
    if not os.path.exists(binary):
        sys.exit(f"missing flowsentry binary {binary}: run cargo build --release")
    os.makedirs(work, exist_ok=True)
    header, rows = load(files)
    idx = [header.index(n) for n in FEATURES]
    X = np.array([[clean(float(r[i])) for i in idx] for r in rows], dtype=np.float64)
    data_csv = os.path.join(work, "parity_input.csv")
    with open(data_csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    forest = IsolationForest(n_estimators=100, max_samples=256, random_state=7).fit(X)
    model = os.path.join(work, "sklearn_forest.json")
    export(forest, FEATURES, model, notes="sklearn parity test")
    want = -forest.score_samples(X)
    scored = os.path.join(work, "parity_scored.csv")
    subprocess.run([binary, "score", "--model", model, data_csv, "-o", scored], check=True)
    with open(scored, newline="") as fh:
        r = csv.reader(fh)
        h = next(r)
        col = h.index("anomaly_score")
        flag = h.index("is_anomaly")
        got = [(float(x[col]), x[flag]) for x in r]
    assert len(got) == len(want), (len(got), len(want))
    worst = max(abs(g - w) for (g, _), w in zip(got, want))
    pred = forest.predict(X)  # -1 = outlier
    flags_agree = sum((f == "1") == (p == -1) for (_, f), p in zip(got, pred))
    print(f"sklearn parity: {len(want)} rows, max |flowsentry - sklearn| = {worst:.3e}, "
          f"is_anomaly agrees with sklearn predict on {flags_agree}/{len(want)} rows")
    if fixture:
        os.makedirs(fixture, exist_ok=True)
        small = IsolationForest(n_estimators=10, max_samples=64, random_state=3).fit(X[:500])
        export(small, FEATURES, os.path.join(fixture, "sklearn_small_model.json"), notes="test fixture")
        s = -small.score_samples(X[:200])
        with open(os.path.join(fixture, "sklearn_small_scores.csv"), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(FEATURES + ["sklearn_anomaly_score"])
            for xrow, sc in zip(X[:200], s):
                w.writerow([repr(float(v)) for v in xrow] + [repr(float(sc))])
        print(f"wrote fixture to {fixture}")
    if worst > 1e-9 or flags_agree != len(want):
        sys.exit("FAIL: flowsentry scores differ from scikit-learn")


if __name__ == "__main__":
    main()
