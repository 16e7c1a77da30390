#!/usr/bin/env python3
"""Builds the train / validation / test splits used for the shipped model from the labeled
improved CIC-IDS2017 samples in ../shared/data/cicids2017-improved (stdlib only, deterministic).
Every row lands in exactly one of train, validation or test.

  train.csv      1,000 benign rows (the model never sees attacks)
  calib.csv      1,000 other benign rows: the false-alarm budget sets the threshold on these
  val.csv        calib.csv's benign rows + half of every attack class (all days): choosing the
                 transform, features and training rows
  test_all.csv   500 other benign rows + the other half of every attack class: the all-class
                 held-out mix (ROC AUC, recall per class)
  test.csv       test_all.csv's benign rows + DoS rows of test_all.csv at 36.5 % attacks (the
                 Wednesday-like mix: DoS Hulk, GoldenEye, Slowloris, Slowhttptest, Heartbleed,
                 like CIC-IDS2017 Wednesday with ~36.5 % attacks)

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
    n_val, n_test = 2 * len(benign) // 5, len(benign) // 5
    b_val, b_test, b_train = benign[:n_val], benign[n_val:n_val + n_test], benign[n_val + n_test:]
    a_val, a_test = {}, {}
    for c in sorted(rows):
        rs = rows[c][:]
        rng.shuffle(rs)
        half = len(rs) // 2
        a_val[c], a_test[c] = rs[:half], rs[half:]
    n_attack = round(ATTACK_SHARE / (1 - ATTACK_SHARE) * n_test)
    dos = [r for c in DOS for r in a_test[c]]
    rng.shuffle(dos)

    def write(name, data):
        with open(os.path.join(out, name), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(data)
        print(f"{name}: {len(data)} rows")

    write("train.csv", b_train)
    write("calib.csv", b_val)
    write("val.csv", b_val + [r for c in sorted(a_val) for r in a_val[c]])
    write("test_all.csv", b_test + [r for c in sorted(a_test) for r in a_test[c]])
    write("test.csv", b_test + dos[:n_attack])


if __name__ == "__main__":
    main()
