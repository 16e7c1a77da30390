#!/usr/bin/env python3
"""Parity with the Python CICFlowMeter (PyPI `cicflowmeter`, pinned in requirements.txt).

Runs the reference and flowsentry on the same captures, matches flows by their endpoints and
protocol (either direction) and start time (the reference prints whole seconds), and prints
flows matched / only in ours / only in theirs and, per feature, the share of matched flows whose
values agree (relative error <= 1e-6, or absolute <= 1 us for times). Markdown output, for the
README. Exits non-zero only when an input or a program is missing, not on disagreement.
"""
import argparse
import csv
import datetime
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

# The reference's column -> flowsentry's CICFlowMeter-4 column (the reference's vocabulary).
MAP = {
    "flow_duration": "Flow Duration", "flow_byts_s": "Flow Bytes/s", "flow_pkts_s": "Flow Packets/s",
    "fwd_pkts_s": "Fwd Packets/s", "bwd_pkts_s": "Bwd Packets/s", "tot_fwd_pkts": "Total Fwd Packet",
    "tot_bwd_pkts": "Total Bwd packets", "totlen_fwd_pkts": "Total Length of Fwd Packet",
    "totlen_bwd_pkts": "Total Length of Bwd Packet", "fwd_pkt_len_max": "Fwd Packet Length Max",
    "fwd_pkt_len_min": "Fwd Packet Length Min", "fwd_pkt_len_mean": "Fwd Packet Length Mean",
    "fwd_pkt_len_std": "Fwd Packet Length Std", "bwd_pkt_len_max": "Bwd Packet Length Max",
    "bwd_pkt_len_min": "Bwd Packet Length Min", "bwd_pkt_len_mean": "Bwd Packet Length Mean",
    "bwd_pkt_len_std": "Bwd Packet Length Std", "pkt_len_max": "Packet Length Max",
    "pkt_len_min": "Packet Length Min", "pkt_len_mean": "Packet Length Mean", "pkt_len_std": "Packet Length Std",
    "pkt_len_var": "Packet Length Variance", "fwd_header_len": "Fwd Header Length",
    "bwd_header_len": "Bwd Header Length", "fwd_seg_size_min": "Fwd Seg Size Min",
    "fwd_act_data_pkts": "Fwd Act Data Pkts", "flow_iat_mean": "Flow IAT Mean", "flow_iat_max": "Flow IAT Max",
    "flow_iat_min": "Flow IAT Min", "flow_iat_std": "Flow IAT Std", "fwd_iat_tot": "Fwd IAT Total",
    "fwd_iat_max": "Fwd IAT Max", "fwd_iat_min": "Fwd IAT Min", "fwd_iat_mean": "Fwd IAT Mean",
    "fwd_iat_std": "Fwd IAT Std", "bwd_iat_tot": "Bwd IAT Total", "bwd_iat_max": "Bwd IAT Max",
    "bwd_iat_min": "Bwd IAT Min", "bwd_iat_mean": "Bwd IAT Mean", "bwd_iat_std": "Bwd IAT Std",
    "fwd_psh_flags": "Fwd PSH Flags", "bwd_psh_flags": "Bwd PSH Flags", "fwd_urg_flags": "Fwd URG Flags",
    "bwd_urg_flags": "Bwd URG Flags", "fin_flag_cnt": "FIN Flag Count", "syn_flag_cnt": "SYN Flag Count",
    "rst_flag_cnt": "RST Flag Count", "psh_flag_cnt": "PSH Flag Count", "ack_flag_cnt": "ACK Flag Count",
    "urg_flag_cnt": "URG Flag Count", "ece_flag_cnt": "ECE Flag Count", "cwr_flag_count": "CWR Flag Count",
    "down_up_ratio": "Down/Up Ratio", "pkt_size_avg": "Average Packet Size",
    "init_fwd_win_byts": "FWD Init Win Bytes", "init_bwd_win_byts": "Bwd Init Win Bytes",
    "active_max": "Active Max", "active_min": "Active Min", "active_mean": "Active Mean", "active_std": "Active Std",
    "idle_max": "Idle Max", "idle_min": "Idle Min", "idle_mean": "Idle Mean", "idle_std": "Idle Std",
    "fwd_byts_b_avg": "Fwd Bytes/Bulk Avg", "fwd_pkts_b_avg": "Fwd Packet/Bulk Avg",
    "bwd_byts_b_avg": "Bwd Bytes/Bulk Avg", "bwd_pkts_b_avg": "Bwd Packet/Bulk Avg",
    "fwd_blk_rate_avg": "Fwd Bulk Rate Avg", "bwd_blk_rate_avg": "Bwd Bulk Rate Avg",
    "fwd_seg_size_avg": "Fwd Segment Size Avg", "bwd_seg_size_avg": "Bwd Segment Size Avg",
    "subflow_fwd_pkts": "Subflow Fwd Packets", "subflow_bwd_pkts": "Subflow Bwd Packets",
    "subflow_fwd_byts": "Subflow Fwd Bytes", "subflow_bwd_byts": "Subflow Bwd Bytes",
}
TIME_FEATURES = {v for v in MAP.values() if "IAT" in v or v.startswith(("Active", "Idle")) or v == "Flow Duration"}


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return math.nan


def agree(feature, a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    tol = max(1e-6 * max(abs(a), abs(b)), 1.0 if feature in TIME_FEATURES else 0.0)
    return abs(a - b) <= tol


def parse_ts(s, fmt):
    try:
        return datetime.datetime.strptime(s, fmt).replace(tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return math.nan  # out-of-range years in damaged captures: such flows stay unmatched


def ts_ours(s):
    return parse_ts(s, "%Y-%m-%d %H:%M:%S.%f")


def ts_theirs(s):
    # The reference prints local time, whole seconds; the runs set TZ=UTC.
    return parse_ts(s, "%Y-%m-%d %H:%M:%S")


def run_one(pcap, args, work):
    base = os.path.join(work, os.path.basename(pcap))
    ours, theirs = base + ".ours.csv", base + ".ref.csv"
    r = subprocess.run([args.flowsentry, "flows", pcap, "--columns", "cfm4", "-o", ours],
                       capture_output=True, text=True)
    if r.returncode not in (0, 2):
        return pcap, None, None, f"flowsentry refused: {r.stderr.strip().splitlines()[-1:]}"
    t = time.monotonic()
    try:
        env = dict(os.environ, TZ="UTC")
        subprocess.run([args.reference, "-f", pcap, "-c", theirs], capture_output=True, text=True,
                       timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return pcap, None, None, f"reference timed out after {args.timeout} s"
    secs = time.monotonic() - t
    if not os.path.exists(theirs):
        return pcap, None, None, "reference wrote no CSV"
    with open(ours, newline="") as fh:
        o = list(csv.DictReader(fh))
    with open(theirs, newline="") as fh:
        th = list(csv.DictReader(fh))
    return pcap, o, th, secs


def compare(o_rows, t_rows, stats):
    index = {}
    for i, t in enumerate(t_rows):
        key = (frozenset([(t["src_ip"], t["src_port"]), (t["dst_ip"], t["dst_port"])]), t["protocol"])
        index.setdefault(key, []).append(i)
    used = set()
    for o in o_rows:
        key = (frozenset([(o["Src IP"], o["Src Port"]), (o["Dst IP"], o["Dst Port"])]), o["Protocol"])
        start = ts_ours(o["Timestamp"])
        best = None
        for i in index.get(key, []):
            if i in used:
                continue
            d = abs(ts_theirs(t_rows[i]["timestamp"]) - start)
            if d <= 1.0 and (best is None or d < best[0]):
                best = (d, i)
        if best is None:
            stats["only_ours"] += 1
            continue
        used.add(best[1])
        t = t_rows[best[1]]
        stats["matched"] += 1
        if t["src_ip"] != o["Src IP"] or t["src_port"] != o["Src Port"]:
            stats["reversed"] += 1
        for theirs, feat in MAP.items():
            ok = agree(feat, num(o.get(feat)), num(t.get(theirs)))
            stats["agree"][feat] = stats["agree"].get(feat, 0) + int(ok)
    stats["only_theirs"] += len(t_rows) - len(used)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--flowsentry", required=True)
    ap.add_argument("--reference", default=os.path.join(os.path.dirname(sys.executable), "cicflowmeter"))
    ap.add_argument("--pcaps", required=True, help="folder of captures (searched recursively; bench/ skipped)")
    ap.add_argument("--max-bytes", type=int, default=4_000_000, help="skip larger captures (the reference is slow)")
    ap.add_argument("--timeout", type=int, default=180)
    ap.add_argument("--out", default=None)
    ap.add_argument("--report", default=None)
    args = ap.parse_args()
    for p, what in ((args.flowsentry, "flowsentry binary (cargo build --release)"), (args.reference, "reference cicflowmeter (tests/parity/setup.sh)"), (args.pcaps, "captures")):
        if not os.path.exists(p):
            sys.exit(f"missing input: {p} ({what})")
    pcaps, skipped = [], []
    for root, _, files in os.walk(args.pcaps):
        for f in sorted(files):
            p = os.path.join(root, f)
            if not f.endswith((".pcap", ".pcapng", ".trace")):
                continue
            if "/bench" in root or os.path.getsize(p) > args.max_bytes:
                skipped.append((p, "benchmark input or over --max-bytes"))
                continue
            pcaps.append(p)
    work = args.out or tempfile.mkdtemp(prefix="cfm-parity-")
    os.makedirs(work, exist_ok=True)
    stats = {"matched": 0, "only_ours": 0, "only_theirs": 0, "reversed": 0, "agree": {}}
    failures = []
    with ThreadPoolExecutor(max_workers=2) as ex:
        for pcap, o, t, info in ex.map(lambda p: run_one(p, args, work), sorted(pcaps)):
            if o is None:
                failures.append((pcap, info))
                continue
            compare(o, t, stats)
    m = stats["matched"]
    lines = [
        f"Captures compared: {len(pcaps) - len(failures)} (skipped: {len(skipped)} over {args.max_bytes} bytes or benchmark input; "
        f"not comparable: {len(failures)})",
        "",
        f"Flows matched: {m}; only in flowsentry: {stats['only_ours']}; only in the reference: {stats['only_theirs']}; "
        f"matched with opposite direction: {stats['reversed']}",
        "",
        "| feature | agreement |",
        "|---|---|",
    ]
    for feat in sorted(set(MAP.values()), key=lambda f: (stats["agree"].get(f, 0), f)):
        lines.append(f"| {feat} | {100.0 * stats['agree'].get(feat, 0) / m:.1f}% |" if m else f"| {feat} | - |")
    if failures:
        lines += ["", "Not comparable:"] + [f"- {os.path.relpath(p, args.pcaps)}: {why}" for p, why in failures]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.report:
        os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
        with open(args.report, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
