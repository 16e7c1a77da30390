#!/usr/bin/env python3
"""Helpers for the detection lab (tests/lab/run.sh). Standard library only.

  lab.py stamp EVE OUT     follow the sensor's JSON-lines file EVE and copy every complete line
                           to OUT prefixed with its wall-clock arrival time ("<epoch s>\\t<line>");
                           on SIGTERM reads what is left and exits. The arrival time is what an
                           operator sees: time-to-alert is measured on it, not on the event's own
                           timestamp.
  lab.py selftest          check the counting rules below on hand-made events.
  lab.py report ...        turn the stamped events and the scenario log into the results table
                           (markdown on stdout and in --out); --strict exits 1 when the issue's
                           "Done when" targets are not met, --strict-attacks when an attack
                           is not named within 10 s.

Counting rules (shared with tests/lab/replay_table.py):
  * an alert is an event whose event_type is "alert" (or the legacy "anomaly");
  * an alert names a host when its address is src_ip or dest_ip, or occurs anywhere in the
    event's "flowsentry" extension object (host alerts put the source or victim there);
  * the detector is flowsentry.detector, or "flow" for a legacy "anomaly" event;
  * flows are the distinct flow_ids of "flow" events and flow-detector alerts (alerts.flow_events
    is on in the lab config), counted per client address.
"""

import argparse
import json
import os
import re
import signal
import sys
import time

ALERT_TYPES = ("alert", "anomaly")


def is_alert(ev):
    return ev.get("event_type") in ALERT_TYPES


def detector(ev):
    fs = ev.get("flowsentry")
    if isinstance(fs, dict) and isinstance(fs.get("detector"), str):
        return fs["detector"]
    return "flow" if ev.get("event_type") == "anomaly" else "?"


def ip_pattern(ip):
    return re.compile(r"(?<![0-9A-Za-z.:])" + re.escape(ip) + r"(?![0-9A-Za-z.:])")


def names(ev, ip, pat=None):
    """True when the event names address ip (src_ip, dest_ip, or inside the flowsentry object)."""
    if ev.get("src_ip") == ip or ev.get("dest_ip") == ip:
        return True
    fs = ev.get("flowsentry")
    if fs is None:
        return False
    return bool((pat or ip_pattern(ip)).search(json.dumps(fs)))


def is_flow_record(ev):
    """An event that stands for one scored flow (flow event or flow-detector alert)."""
    t = ev.get("event_type")
    return t == "flow" or (t in ALERT_TYPES and detector(ev) == "flow")


# ---------------------------------------------------------------- stamp


def stamp(src, dst):
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__("now", True))
    f = None
    buf = b""
    with open(dst, "w", encoding="utf-8") as out:
        while True:
            last = stop["now"]
            if f is None and os.path.exists(src):
                f = open(src, "rb")
            if f is not None:
                chunk = f.read()
                if chunk:
                    t = time.time()
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        if line.strip():
                            out.write(f"{t:.3f}\t{line.decode('utf-8', 'replace')}\n")
                    out.flush()
            if last:
                break
            time.sleep(0.05)
    return 0


# ---------------------------------------------------------------- report


def load_events(path):
    events, bad = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            t, _, js = line.rstrip("\n").partition("\t")
            try:
                ev = json.loads(js)
                events.append((float(t), ev))
            except (ValueError, TypeError):
                bad += 1
    return events, bad


def load_scenarios(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 8 or p[0] == "name":
                continue
            rows.append(
                {
                    "name": p[0],
                    "kind": p[1],
                    "ip": p[2],
                    "start": float(p[3]),
                    "tool_end": float(p[4]),
                    "end": float(p[5]),
                    "rc": p[6],
                    "what": p[7],
                }
            )
    return rows


def final_stats(log):
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            lines = [l for l in f if "packets=" in l and "scored=" in l]
    except OSError:
        return {}
    if not lines:
        return {}
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1])}


def fmt_rate(alerts, flows):
    if flows == 0:
        return "n/a (0 flows)"
    return f"{1000.0 * alerts / flows:.1f}"


def report(a):
    events, bad = load_events(a.events)
    scen = load_scenarios(a.scenarios)
    victim = a.victim
    lab_ips = {s["ip"] for s in scen} | {victim}
    alerts = [(t, ev) for t, ev in events if is_alert(ev)]
    attributed = set()
    out = []
    ok = True
    attacks_ok = True
    why = []

    attacks = [s for s in scen if s["kind"].startswith("attack")]
    benign = [s for s in scen if s["kind"] == "benign"]

    def flows_of(ip):
        ids = set()
        for i, (_, ev) in enumerate(events):
            if is_flow_record(ev) and (ev.get("src_ip") == ip or ev.get("dest_ip") == ip):
                ids.add(ev.get("flow_id", f"line{i}"))
        return len(ids)

    out.append("| attack | tool | source | alerted | first alert naming it (s) | alerts | flows | detectors |")
    out.append("|---|---|---|---|---|---|---|---|")
    for s in attacks:
        pat = ip_pattern(s["ip"])
        vpat = ip_pattern(victim)
        mine = []
        for idx, (t, ev) in enumerate(alerts):
            hit = names(ev, s["ip"], pat)
            if not hit and s["kind"] == "attack-flood" and names(ev, victim, vpat):
                src = ev.get("src_ip")
                spoofed = src is not None and src not in lab_ips
                in_window = s["start"] <= t < s["end"]
                hit = spoofed or in_window
            if hit:
                mine.append((t, ev))
                attributed.add(idx)
        first = min((t for t, _ in mine), default=None)
        delay = None if first is None else first - s["start"]
        dets = sorted({detector(ev) for _, ev in mine})
        named = "victim " + victim if s["kind"] == "attack-flood" else s["ip"]
        src_txt = "spoofed (names victim)" if s["kind"] == "attack-flood" else s["ip"]
        if s["kind"] == "attack-flood":
            nflows = flows_to_victim_spoofed(events, victim, lab_ips)
        else:
            nflows = flows_of(s["ip"])
        delay_txt = "-" if delay is None else f"{delay:.1f}"
        out.append(
            f"| {s['name']} | `{s['what']}` | {src_txt} | {'yes' if mine else 'no'} | "
            f"{delay_txt} | {len(mine)} | {nflows} | {', '.join(dets) if dets else '-'} |"
        )
        if delay is None or delay > 10.0:
            ok = False
            attacks_ok = False
            why.append(f"{s['name']}: no alert naming {named} within 10 s")
        # hping3 exits 1 when nothing answered (a flood's normal end)
        normal = ("0", "1") if s["kind"] == "attack-flood" or s["name"].startswith("hping3") else ("0",)
        if s["rc"] not in normal:
            why.append(f"note: {s['name']} tool exited {s['rc']}" + (" (timeout)" if s["rc"] == "124" else ""))
    out.append("")
    out.append("| benign | tool | client | flows | alerts | alerts per 1,000 flows | detectors |")
    out.append("|---|---|---|---|---|---|---|")
    tot_f = tot_a = 0
    for s in benign:
        pat = ip_pattern(s["ip"])
        mine = []
        for idx, (t, ev) in enumerate(alerts):
            if names(ev, s["ip"], pat):
                mine.append(ev)
                attributed.add(idx)
        nf = flows_of(s["ip"])
        tot_f += nf
        tot_a += len(mine)
        dets = sorted({detector(ev) for ev in mine})
        out.append(
            f"| {s['name']} | `{s['what']}` | {s['ip']} | {nf} | {len(mine)} | "
            f"{fmt_rate(len(mine), nf)} | {', '.join(dets) if dets else '-'} |"
        )
        if s["rc"] != "0":
            why.append(f"note: {s['name']} tool exited {s['rc']}" + (" (timeout)" if s["rc"] == "124" else ""))
    out.append(f"| **all benign** | | | {tot_f} | {tot_a} | {fmt_rate(tot_a, tot_f)} | |")
    if benign and (tot_f == 0 or 1000.0 * tot_a / tot_f > 1.0):
        ok = False
        why.append(f"benign: {tot_a} alerts on {tot_f} flows (> 1 per 1,000)")

    other = [alerts[i][1] for i in range(len(alerts)) if i not in attributed]
    st = final_stats(a.log)
    out.append("")
    notes = [
        f"alerts in the run: {len(alerts)}; not attributed to a scenario: {len(other)}",
        f"events: {len(events)}" + (f" ({bad} unparsable lines)" if bad else ""),
    ]
    if st:
        notes.append(
            "sensor: "
            + ", ".join(
                f"{k}={st[k]}"
                for k in ("packets", "kernel_received", "kernel_dropped", "if_dropped", "scored", "alerts", "sink_dropped")
                if k in st
            )
        )
    if other:
        by = {}
        for ev in other:
            k = (detector(ev), ev.get("src_ip"), ev.get("dest_ip"), ev.get("dest_port"))
            by[k] = by.get(k, 0) + 1
        top = sorted(by.items(), key=lambda kv: -kv[1])[:5]
        notes.append(
            "unattributed: "
            + "; ".join(f"{n}x {d} {s}->{dst}:{p}" for (d, s, dst, p), n in top)
        )
    for n in notes:
        out.append(f"- {n}")
    verdict = "MET" if ok else "NOT MET"
    out.append(f"- Done-when targets (every attack named within 10 s; all benign <= 1 alert per 1,000 flows): **{verdict}**")
    for w in why:
        out.append(f"  - {w}")

    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(a.header + "\n\n" if a.header else "")
            f.write(text)
    if a.strict_attacks and not attacks_ok:
        return 1
    return 1 if (a.strict and not ok) else 0


def flows_to_victim_spoofed(events, victim, lab_ips):
    """Flows of a spoofed flood: flow records to the victim from addresses outside the lab."""
    ids = set()
    for i, (_, ev) in enumerate(events):
        if not is_flow_record(ev):
            continue
        s, d = ev.get("src_ip"), ev.get("dest_ip")
        if (d == victim and s not in lab_ips) or (s == victim and d not in lab_ips):
            ids.add(ev.get("flow_id", f"line{i}"))
    return len(ids)


def selftest():
    """The counting rules on hand-made events (run by run.sh and replay_table.py first)."""
    legacy = {"event_type": "anomaly", "src_ip": "10.203.0.11", "dest_ip": "10.203.0.20", "flow_id": 1}
    host = {
        "event_type": "alert",
        "src_ip": "10.203.0.20",
        "flowsentry": {"detector": "host", "host": {"role": "source", "ip": "10.203.0.12"}, "why": "fan-out of 10.203.0.13 x"},
    }
    flow = {"event_type": "flow", "src_ip": "10.203.0.31", "dest_ip": "10.203.0.20", "flow_id": 7}
    checks = [
        (is_alert(legacy) and is_alert(host) and not is_alert(flow), "alert types"),
        (detector(legacy) == "flow" and detector(host) == "host" and detector(flow) == "?", "detector"),
        (names(legacy, "10.203.0.11") and names(legacy, "10.203.0.20"), "src_ip/dest_ip name"),
        (not names(legacy, "10.203.0.1"), "10.203.0.1 is not 10.203.0.11"),
        (names(host, "10.203.0.12") and names(host, "10.203.0.13"), "inside the flowsentry object"),
        (not names(host, "10.203.0.1") and not names(flow, "10.203.0.11"), "no false names"),
        (names({"flowsentry": {"x": "2001:db8::1"}}, "2001:db8::1"), "IPv6"),
        (not names({"flowsentry": {"x": "2001:db8::10"}}, "2001:db8::1"), "IPv6 prefix"),
        (is_flow_record(flow) and is_flow_record(legacy) and not is_flow_record(host), "flow records"),
    ]
    bad = [what for ok, what in checks if not ok]
    for what in bad:
        print(f"lab.py selftest: FAILED: {what}", file=sys.stderr)
    return 1 if bad else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stamp")
    s.add_argument("eve")
    s.add_argument("out")
    r = sub.add_parser("report")
    r.add_argument("--events", required=True)
    r.add_argument("--scenarios", required=True)
    r.add_argument("--victim", required=True)
    r.add_argument("--log", default="")
    r.add_argument("--out", default="")
    r.add_argument("--header", default="")
    r.add_argument("--strict", action="store_true")
    r.add_argument("--strict-attacks", action="store_true")
    sub.add_parser("selftest")
    a = p.parse_args()
    if a.cmd == "selftest":
        return selftest()
    if a.cmd == "stamp":
        return stamp(a.eve, a.out)
    return report(a)


if __name__ == "__main__":
    sys.exit(main())
