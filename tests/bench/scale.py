#!/usr/bin/env python3
"""Writes a scale capture: a classic pcap repeated K times, each copy shifted in time by the
span of the original plus one second (so flows do not merge across copies). Deterministic,
standard library only. Usage: scale.py IN.pcap OUT.pcap K"""
import struct
import sys


def main() -> None:
    src, out, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = open(src, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic not in (0xA1B2C3D4, 0xA1B23C4D):
        sys.exit(f"{src}: not a little-endian classic pcap")
    frac = 1_000_000 if magic == 0xA1B2C3D4 else 1_000_000_000
    recs, off = [], 24
    while off + 16 <= len(data):
        sec, sub, incl, orig = struct.unpack_from("<IIII", data, off)
        recs.append((sec, sub, data[off + 16 : off + 16 + incl], orig))
        off += 16 + incl
    span = recs[-1][0] - recs[0][0] + 1 if recs else 1
    with open(out, "wb") as f:
        f.write(data[:24])
        for i in range(k):
            shift = i * span
            f.write(b"".join(struct.pack("<IIII", s + shift, u, len(b), o) + b for s, u, b, o in recs))


if __name__ == "__main__":
    main()
