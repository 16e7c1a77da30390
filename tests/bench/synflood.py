#!/usr/bin/env python3
"""Writes a deterministic spoofed SYN flood as a classic pcap (Ethernet, IPv4, TCP SYN, 60-byte
frames): N single-packet flows from pseudo-random sources to one server port, 1 µs apart.
Standard library only. Usage: synflood.py OUT.pcap [N=2000000]."""
import struct
import sys


def main() -> None:
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000_000
    dst_ip = bytes([10, 0, 0, 80])
    eth = bytes([0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00])
    t0 = 1_700_000_000
    x = 0x2545F4914F6CDD1D
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        buf = []
        for i in range(n):
            # xorshift64: deterministic, distinct enough that every packet is its own flow
            x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
            x ^= x >> 7
            x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
            # i in the source address keeps every flow unique (n < 2^24)
            src_ip = struct.pack(">I", 0x0B000000 | (i & 0xFFFFFF))
            sport = 1024 + (x & 0xEFFF)
            seq = (x >> 16) & 0xFFFFFFFF
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 40, i & 0xFFFF, 0, 64, 6, 0, src_ip, dst_ip)
            tcp = struct.pack(">HHIIBBHHH", sport, 80, seq, 0, 0x50, 0x02, 64240, 0, 0)
            frame = eth + ip + tcp + b"\x00" * 6
            us = i  # 1 µs apart
            buf.append(struct.pack("<IIII", t0 + us // 1_000_000, us % 1_000_000, len(frame), len(frame)))
            buf.append(frame)
            if len(buf) >= 20000:
                f.write(b"".join(buf))
                buf.clear()
        f.write(b"".join(buf))


if __name__ == "__main__":
    main()
