#!/usr/bin/env python3
"""Community ID parity: flowsentry's `community_id` against the reference implementation.

For each capture, `flowsentry flows --columns cfm4 --community-id SEED` gives one row per flow
with its Community ID. Independently, scapy dissects every packet of the capture and the
reference package (`communityid` 1.5.0, corelight) computes each packet's Community ID. A flow
matches when its id is among the reference ids of its own packets (same address pair, protocol
and, for TCP/UDP/SCTP, port pair; ICMP flows are looked up by address pair and protocol).

Prints one line per capture (flows, matched, SCTP packets seen) and exits 1 on any mismatch or
on a capture that yields no flow at all.

usage: communityid_parity.py FLOWSENTRY [--seed N] CAPTURE...
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

import communityid
from scapy.all import IP, TCP, UDP, ICMP, PcapReader  # noqa: F401  (layers register)
from scapy.layers.inet6 import IPv6
from scapy.layers.sctp import SCTP
from scapy.contrib.mpls import MPLS  # noqa: F401  (binds MPLS under Ethernet: label stacks)

PORTS = {6: TCP, 17: UDP, 132: SCTP}


def transport(ip):
    """(proto, sport, dport, icmp_type, icmp_code) of the first transport after `ip`, or None."""
    if isinstance(ip, IP):
        if ip.flags.MF or ip.frag:
            return None  # fragments: flowsentry skips them too
        proto = ip.proto
    layer = ip.payload
    if isinstance(ip, IPv6):
        # Walk extension headers to the transport.
        # (Only the extension header classes: scapy's attribute lookup falls through to inner
        # layers, so `hasattr(layer, "nh")` is also true for an ICMPv6 error quoting a packet.)
        while layer is not None and layer.__class__.__name__.startswith("IPv6ExtHdr"):
            if layer.__class__.__name__ == "IPv6ExtHdrFragment":
                return None
            layer = layer.payload
        proto = None
    for p, cls in PORTS.items():
        if isinstance(layer, cls):
            return (p, layer.sport, layer.dport, None, None)
    if isinstance(ip, IP) and proto == 1 and isinstance(layer, ICMP):
        return (1, None, None, layer.type, layer.code)
    if isinstance(ip, IPv6) and layer is not None and layer.__class__.__name__.startswith("ICMPv6"):
        t = getattr(layer, "type", None)
        if t is not None:
            return (58, None, None, t, getattr(layer, "code", 0))
    # An ICMP message too short for scapy to dissect (a truncated router or neighbour
    # advertisement) stays Raw: type and code are its first two bytes.
    raw = bytes(layer) if layer is not None and layer.__class__.__name__ == "Raw" else b""
    nh = getattr(ip, "nh", None) if isinstance(ip, IPv6) else proto
    if len(raw) >= 2 and nh in (1, 58):
        return (nh, None, None, raw[0], raw[1])
    return None


def key(a, b, proto, sp, dp):
    if proto in PORTS:
        return (proto, frozenset([(a, sp), (b, dp)]))
    return (proto, frozenset([a, b]))


def reference(path, seed):
    cid = communityid.CommunityID(seed)
    ids = defaultdict(set)
    sctp = 0
    with PcapReader(path) as r:
        for pkt in r:
            ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
            if ip is None:
                continue
            t = transport(ip)
            if t is None:
                continue
            proto, sp, dp, it, ic = t
            sctp += proto == 132
            if proto in (1, 58):
                tpl = communityid.FlowTuple(proto, ip.src, ip.dst, it, ic)
            else:
                tpl = communityid.FlowTuple(proto, ip.src, ip.dst, sp, dp)
            ids[key(ip.src, ip.dst, proto, sp, dp)].add(cid.calc(tpl))
    return ids, sctp


def ours(binary, path, seed):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "flows.csv")
        subprocess.run(
            [binary, "flows", "--columns", "cfm4", "--community-id", "--community-id-seed", str(seed), "-o", out, path],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        with open(out, newline="") as f:
            return list(csv.DictReader(f))


def norm(ip):
    # scapy prints IPv6 compressed like Rust does; IPv4 is plain dotted quad in both.
    return ip


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("flowsentry")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("captures", nargs="+")
    a = ap.parse_args()
    bad = 0
    for path in a.captures:
        if not os.path.isfile(path):
            print(f"missing input: {path}", file=sys.stderr)
            return 1
        t0 = time.time()
        ref, sctp = reference(path, a.seed)
        rows = ours(a.flowsentry, path, a.seed)
        matched, missing, wrong = 0, 0, []
        for r in rows:
            proto = int(r["Protocol"])
            sp, dp = int(r["Src Port"]), int(r["Dst Port"])
            k = key(norm(r["Src IP"]), norm(r["Dst IP"]), proto, sp, dp)
            if k not in ref:
                missing += 1
                wrong.append(("no reference packet", r["Flow ID"], r["Community ID"]))
            elif r["Community ID"] in ref[k]:
                matched += 1
            else:
                wrong.append((sorted(ref[k]), r["Flow ID"], r["Community ID"]))
        name = os.path.basename(path)
        print(
            f"{name}: {matched}/{len(rows)} flows match the reference"
            f" ({missing} without a reference packet; {sctp} SCTP packets in the capture)"
            f" in {time.time() - t0:.1f} s"
        )
        for w in wrong[:5]:
            print(f"  mismatch: {w}")
        if wrong or not rows:
            bad += 1
    if bad:
        print(f"FAIL: {bad} capture(s) with mismatches or no flows", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
