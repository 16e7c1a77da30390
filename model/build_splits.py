#!/usr/bin/env python3
"""Builds the train / validation / test splits used for the shipped model from the labeled
improved CIC-IDS2017 samples in ../shared/data/cicids2017-improved (stdlib only, deterministic).

  train.csv      benign rows only (the model never sees attacks)
  val.csv        other benign rows + DoS rows at 36.5 % attacks (threshold tuning)
  test.csv       other benign rows + other DoS rows at 36.5 % attacks (the Wednesday-like mix:
                 DoS Hulk, GoldenEye, Slowloris, Slowhttptest, Heartbleed, like CIC-IDS2017
                 Wednesday with ~36.5 % attacks)
  test_all.csv   the test benign rows + every attack row of every class not used in val.csv
                 (for recall and ROC AUC per attack class)

Usage: build_splits.py SHARED_DATA_DIR OUT_DIR
"""
import csv
import os
import random
import sys

DOS = ["DoS_Hulk", "DoS_GoldenEye", "DoS_Slowloris", "DoS_Slowhttptest", "Heartbleed"]
ATTACK_SHARE = 0.365
SEED = 20170705  # CIC-IDS2017 Wednesday


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src = os.path.join(sys.argv[1], "cicids2017-improved")
    out = sys.argv[2]
    if not os.path.isdir(src):
        sys.exit(f"missing input: {src} (the shared labeled CSVs)")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(SEED)
    files = sorted(f for f in os.listdir(src) if f.endswith(".csv"))
    header = None
    rows = {}
    for f in files:
        with open(os.path.join(src, f), newline="") as fh:
            r = csv.reader(fh)
            h = next(r)
            header = header or h
            if h != header:
                sys.exit(f"{f}: header differs from the other files")
            rows[f.rsplit("_", 1)[0]] = list(r)
    benign = rows.pop("BENIGN")
    rng.shuffle(benign)
    n_val = n_test = len(benign) // 5
    b_val, b_test, b_train = benign[:n_val], benign[n_val:n_val + n_test], benign[n_val + n_test:]
    n_attack = round(ATTACK_SHARE / (1 - ATTACK_SHARE) * n_test)
    dos = [(c, r) for c in DOS for r in rows[c]]
    rng.shuffle(dos)
    a_val, a_test = dos[:n_attack], dos[n_attack:2 * n_attack]
    used_in_val = {id(r) for _, r in a_val}

    def write(name, data):
        with open(os.path.join(out, name), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(data)
        print(f"{name}: {len(data)} rows")

    write("train.csv", b_train)
    write("val.csv", b_val + [r for _, r in a_val])
    write("test.csv", b_test + [r for _, r in a_test])
    rest = [r for c, rs in rows.items() for r in rs if id(r) not in used_in_val]
    write("test_all.csv", b_test + rest)


if __name__ == "__main__":
    main()
