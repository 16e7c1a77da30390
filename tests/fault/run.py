#!/usr/bin/env python3
"""flowsentry fault-injection suite (issue 9): throws damaged inputs and failing surroundings at
the release binary and checks it neither panics nor hangs nor loses events without counting them.

Sections (each bounded in cases and seconds, one fixed seed):
  pcap      mutated captures from ../shared/pcaps through `flows` and `replay`
  config    mutated configs through `check-config` and `replay` (check-config valid => replay runs)
  model     mutated models through `check-config` and `replay` (same rule)
  http      abuse of the HTTP endpoint of a daemon in its own network namespace (fd limit 128)
  disk      a JSON sink on a 256 KiB tmpfs: whole lines, counters equal to the file, bounded stop
  collector a TCP syslog collector that disappears and returns (UDP measured, not judged)

Prints a table (cases, panics, hangs, events lost uncounted) and exits 1 on any panic, hang,
uncounted loss, or broken rule. Needs root (tmpfs, network namespaces) and `ip`.
Usage: tests/fault/run.py --bin target/release/flowsentry --pcaps ../shared/pcaps [--seed 9]
"""

import argparse
import json
import shutil
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "model", "forest.json")
SQLINJ = os.path.join(ROOT, "tests", "data", "nfstream__WebattackSQLinj.pcap")
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE}


class Row:
    def __init__(self, name):
        self.name = name
        self.cases = 0
        self.panics = 0
        self.hangs = 0
        self.lost = None  # events lost without being counted (None: not applicable)
        self.problems = []  # broken rules, each a sentence
        self.notes = ""

    def failed(self):
        return self.panics or self.hangs or (self.lost or 0) > 0 or self.problems


def run(cmd, timeout, stdin=None):
    """(returncode or None when hung, stdout bytes, stderr bytes)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=stdin or subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return None, out, err


def is_panic(rc, err):
    return rc == 101 or b"panicked at" in err or (rc is not None and rc < 0 and -rc in CRASH_SIGNALS)


def judge(row, what, rc, err, allowed):
    """Counts a panic / hang / unexpected exit code of one run."""
    if rc is None:
        row.hangs += 1
        row.problems.append(f"hang: {what}")
    elif is_panic(rc, err):
        row.panics += 1
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        row.problems.append(f"panic: {what}: {' | '.join(tail)}")
    elif rc not in allowed:
        row.problems.append(f"exit {rc} (allowed {sorted(allowed)}): {what}")


def stat(err, key):
    """The last `key=N` of the stats lines on stderr."""
    m = re.findall(rb"\b" + key.encode() + rb"=(\d+)", err)
    return int(m[-1]) if m else None


# ---------------------------------------------------------------- captures written by the suite

def udp_flows_pcap(path, flows, gap_us, t0=1_500_000_000_000_000):
    """One UDP packet per flow (distinct source ports and addresses), `gap_us` apart."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(flows):
            src = bytes([10, 1 + (i >> 16) % 250, (i >> 8) & 255, i & 255])
            eth = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00"
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 29, 0, 0, 64, 17, 0, src, bytes([10, 0, 0, 2]))
            udp = struct.pack("!HHHH", 1024 + i % 60000, 53, 9, 0) + b"a"
            fr = eth + ip + udp
            ts = t0 + i * gap_us
            f.write(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(fr), len(fr)))
            f.write(fr)


def write_config(path, body):
    with open(path, "w") as f:
        f.write(body)
    return path


# ---------------------------------------------------------------- pcap mutations

def pcap_records(b):
    """Offsets of classic pcap record headers (little-endian files only)."""
    offs, off = [], 24
    if b[:4] != b"\xd4\xc3\xb2\xa1":
        return offs
    while off + 16 <= len(b) and len(offs) < 100_000:
        offs.append(off)
        caplen = struct.unpack_from("<I", b, off + 8)[0]
        off += 16 + caplen
    return offs


def mutate_pcap(b, rng):
    b = bytearray(b)
    kind = rng.choice(["bitflip", "truncate", "header", "caplen", "splice", "blocklen"])
    if kind == "bitflip" and b:
        for _ in range(rng.randint(1, 32)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate" and b:
        b = b[: rng.randrange(len(b))]
    elif kind == "header" and len(b) >= 24:
        field = rng.choice([4, 6, 16, 20])
        val = rng.choice([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(300)])
        size = 2 if field in (4, 6) else 4
        b[field:field + size] = (val & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    elif kind == "caplen":
        offs = pcap_records(bytes(b))
        if offs:
            o = rng.choice(offs)
            val = rng.choice([0, 1, 0xFFFFFFFF, 0x40000, 70000, rng.randrange(2000)])
            b[o + 8:o + 12] = val.to_bytes(4, "little")
    elif kind == "splice" and len(b) > 32:
        i, j = sorted(rng.randrange(24, len(b)) for _ in range(2))
        b[i:i] = bytes(b[i:j][:4096]) if rng.random() < 0.5 else os.urandom(rng.randint(1, 64))
    elif kind == "blocklen" and len(b) > 32:
        # pcapng block total lengths sit at multiples of 4: hit one.
        i = rng.randrange(8, len(b) - 4) & ~3
        b[i:i + 4] = rng.choice([0, 3, 0xFFFFFFFF, 12, 0x1000000]).to_bytes(4, "little")
    return bytes(b), kind


def section_pcap(a, rng, tmp, deadline):
    row = Row("pcap mutations")
    files = []
    for d, _, names in os.walk(a.pcaps):
        for n in names:
            p = os.path.join(d, n)
            if n.endswith((".pcap", ".pcapng", ".cap")) and os.path.getsize(p) <= 256 * 1024:
                files.append(p)
    files.sort()
    if not files:
        row.problems.append(f"no capture <= 256 KiB under {a.pcaps}")
        return row
    cfg = write_config(os.path.join(tmp, "pcap.toml"),
                       f'[model]\npath = "{MODEL}"\n[stats]\ninterval_s = 0\n[logging]\nlevel = "error"\n')
    kinds = {}
    for i in range(a.pcap_cases):
        if time.monotonic() > deadline:
            row.notes = f"time budget reached after {i} cases"
            break
        src = rng.choice(files)
        with open(src, "rb") as f:
            data, kind = mutate_pcap(f.read(), rng)
        kinds[kind] = kinds.get(kind, 0) + 1
        p = os.path.join(tmp, "m.pcap")
        with open(p, "wb") as f:
            f.write(data)
        what = f"{os.path.relpath(src, a.pcaps)} {kind} (case {i})"
        rc, _, err = run([a.bin, "flows", p, "-o", "/dev/null"], 20)
        judge(row, "flows " + what, rc, err, {0, 1, 2})
        rc, _, err = run([a.bin, "replay", "--config", cfg, p], 20)
        judge(row, "replay " + what, rc, err, {0, 1, 2})
        row.cases += 1
    row.notes = (row.notes + " " if row.notes else "") + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    return row


# ---------------------------------------------------------------- config and model mutations

def base_config(tmp, model):
    return (
        f'[sensor]\nname = "fault"\n[capture]\ninterface = "lo"\nbpf_filter = "tcp or udp"\n'
        f'[flow]\nflow_timeout_s = 120.0\nactivity_timeout_s = 5.0\nmax_flows = 1000\n'
        f'[model]\npath = "{model}"\n'
        f'[alerts]\nflow_events = true\nqueue_size = 100\ntop_features = 5\nshutdown_timeout_s = 1.0\n'
        f'[[alerts.sinks]]\ntype = "json"\npath = "{tmp}/cfg-events.json"\n'
        f'[logging]\nlevel = "info"\nformat = "plain"\n[stats]\ninterval_s = 0\n'
        f'[http]\nenabled = false\nlisten = "127.0.0.1:9108"\n'
    )


def weird_values(tmp):
    return ["0", "-1", "1e-300", "1e300", "nan", "inf", "-inf", "18446744073709551615",
            "9223372036854775807", "1000000000000", '""', '"' + "x" * 5000 + '"', "true", "[]",
            "{}", '"/dev/zero"', '"/"', f'"{tmp}/fifo"', '"warning"', '"0.0.0.0:1"',
            '"tcp port eighty"', '"rfc9999"', '"udp"', '"nowhere:99999"', "0.5", "2", "65536"]


def mutate_config(text, rng, tmp):
    lines = text.splitlines()
    kind = rng.choice(["value", "value", "value", "delete", "duplicate", "bytes", "truncate"])
    keyed = [i for i, l in enumerate(lines) if " = " in l]
    if kind == "value" and keyed:
        for _ in range(rng.randint(1, 3)):
            i = rng.choice(keyed)
            k = lines[i].split(" = ")[0]
            lines[i] = f"{k} = {rng.choice(weird_values(tmp))}"
    elif kind == "delete":
        del lines[rng.randrange(len(lines))]
    elif kind == "duplicate":
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif kind == "bytes":
        b = bytearray("\n".join(lines).encode())
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return b.decode(errors="replace"), kind
    elif kind == "truncate":
        t = "\n".join(lines)
        return t[: rng.randrange(len(t))], kind
    return "\n".join(lines) + "\n", kind


def mutate_model(m, rng):
    m = json.loads(json.dumps(m))
    kind = rng.choice(["node", "node", "cycle", "arrays", "features", "scalars", "text", "nesting"])
    trees = m["trees"]
    t = rng.choice(trees)
    if kind == "node":
        arr = rng.choice(["feature", "threshold", "left", "right", "n_samples"])
        i = rng.randrange(len(t[arr]))
        t[arr][i] = rng.choice([-1, -2, 0, 10**9, 2**63 - 1, 1e308, -1e308, 0.5, 1000])
    elif kind == "cycle":
        inner = [i for i, l in enumerate(t["left"]) if l != -1]
        if inner:
            i = rng.choice(inner)
            t[rng.choice(["left", "right"])][i] = rng.choice([0, i])
    elif kind == "arrays":
        arr = rng.choice(["feature", "threshold", "left", "right", "n_samples"])
        t[arr] = t[arr][: rng.randrange(len(t[arr]) + 1)]
    elif kind == "features":
        f = m["features"]
        choice = rng.choice(["unknown", "dup", "empty", "long"])
        if choice == "unknown":
            f[rng.randrange(len(f))] = "No Such Feature"
        elif choice == "dup":
            f[1] = f[0]
        elif choice == "empty":
            m["features"] = []
        else:
            m["features"] = f * 3
    elif kind == "scalars":
        key = rng.choice(["max_samples", "threshold", "offset", "version", "format"])
        m[key] = rng.choice([0, 1, -1, 2**40, 1e308, 0.0, 1.0, "x", None, 0.5])
    if kind == "text":
        s = json.dumps(m)
        s = s[: rng.randrange(len(s))] if rng.random() < 0.5 else s.replace('"left"', '"lft"', 1)
        return s, kind
    if kind == "nesting":
        return "[" * 100_000 + "]" * 100_000, kind
    return json.dumps(m), kind


def section_config_or_model(a, rng, tmp, deadline, which):
    row = Row(f"{which} mutations")
    fifo = os.path.join(tmp, "fifo")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    model_path = os.path.join(tmp, "mut-model.json")
    # The host model is read from beside the flow model: keep it valid there.
    shutil.copyfile(os.path.join(ROOT, "model", "host-forest.json"), os.path.join(tmp, "host-forest.json"))
    with open(MODEL) as f:
        model = json.load(f)
    cases = a.config_cases if which == "config" else a.model_cases
    kinds, agreed = {}, 0
    for i in range(cases):
        if time.monotonic() > deadline:
            row.notes = f"time budget reached after {i} cases; "
            break
        if which == "config":
            text, kind = mutate_config(base_config(tmp, MODEL), rng, tmp)
        else:
            mtext, kind = mutate_model(model, rng)
            with open(model_path, "w") as f:
                f.write(mtext)
            text = base_config(tmp, model_path)
        kinds[kind] = kinds.get(kind, 0) + 1
        cfg = write_config(os.path.join(tmp, "mut.toml"), text)
        what = f"{kind} (case {i})"
        rc_check, _, err = run([a.bin, "check-config", cfg], 15)
        judge(row, "check-config " + what, rc_check, err, {0, 1})
        rc_replay, _, err_r = run([a.bin, "replay", "--config", cfg, SQLINJ], 20)
        judge(row, "replay " + what, rc_replay, err_r, {0, 1})
        # The rule: what check-config calls valid, replay runs (BPF and interface are live-only).
        if rc_check == 0 and rc_replay not in (0, None):
            row.problems.append(f"check-config valid but replay exit {rc_replay}: {what}: "
                                + err_r.decode(errors="replace").strip()[-200:])
        elif rc_check == 1 and rc_replay == 0 and b"bpf_filter" not in err:
            row.problems.append(f"check-config refused but replay ran: {what}: "
                                + err.decode(errors="replace").strip()[-200:])
        else:
            agreed += 1
        row.cases += 1
    row.notes += f"check-config and replay agreed {agreed}/{row.cases}; " + ", ".join(
        f"{k} {v}" for k, v in sorted(kinds.items()))
    return row


# ---------------------------------------------------------------- HTTP abuse (client side)

def http_client(addr):
    """Runs inside the client namespace; prints one JSON object: case -> [ok, detail]."""
    host, port = addr.rsplit(":", 1)
    port = int(port)
    res = {}

    def exchange(data, timeout=4.0, shut=True):
        s = socket.create_connection((host, port), timeout=timeout)
        s.settimeout(timeout)
        try:
            try:
                if data:
                    s.sendall(data)
                if shut:
                    s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # refused and closed while we were still sending: read what came back
            out, t = b"", time.monotonic()
            while time.monotonic() - t < timeout:
                try:
                    c = s.recv(65536)
                except (socket.timeout, OSError):
                    break
                if not c:
                    break
                out += c
            return out or b"<reset>"
        except (ConnectionResetError, BrokenPipeError):
            return b"<reset>"
        finally:
            s.close()

    def status(out):
        m = re.match(rb"HTTP/1\.[01] (\d{3})", out)
        return int(m.group(1)) if m else None

    def metrics_ok(timeout=4.0):
        """/metrics answers 200 within `timeout`, retrying while it says busy (503)."""
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            try:
                st = status(exchange(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n", 2.0))
            except OSError:
                st = None
            if st == 200:
                return True
            time.sleep(0.2)
        return False

    def case(name, data, want, timeout=4.0, shut=True):
        t = time.monotonic()
        try:
            out = exchange(data, timeout, shut)
        except OSError as e:
            res[name] = [False, f"error {e}"]
            return
        st, el = status(out), time.monotonic() - t
        # A server that refuses early and closes while the client still sends may reset the
        # connection before the client reads the refusal: also a refusal.
        if st is None and out == b"<reset>" and want and None in want:
            st = None
        ok = (st in want if want else True) and el < timeout
        res[name] = [ok and metrics_ok(), f"status {st} in {el:.2f} s"]

    case("huge content-length", b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 18446744073709551615\r\n\r\n{}", {400, 413, 431})
    case("content-length 1e9", b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000000\r\n\r\n{}", {413})
    case("bare LF", b"GET /metrics HTTP/1.1\nhost: x\n\n", {200}, timeout=2.0)
    case("64 KiB header", b"GET /metrics HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * 65536 + b"\r\n\r\n", {431, 400, None})
    big = b"1" * (1 << 20)
    case("1 MiB body", b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(big) + big, {413, None})
    case("bad chunk size", b"POST /predict HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", {400})
    case("two content-lengths", b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 9\r\n\r\n{}", {400})
    case("negative content-length", b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n{}", {400})
    case("not JSON", b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\n{{{", {400})
    case("deep JSON", b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 20000\r\n\r\n" + b"[" * 20000, {400})
    case("no headers end", b"GET /metrics HTTP/1.1\r\nhost: x\r\n", None, timeout=8.0, shut=False)
    rng = random.Random(7)
    for k in range(20):
        case(f"garbage {k}", bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000))), None)
    case("100 pipelined", b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n" * 100, {200})
    # Slow clients: more than the connection limit and the fd limit, each half a request line.
    slow, t = [], time.monotonic()
    for _ in range(300):
        try:
            s = socket.create_connection((host, port), timeout=2)
            s.sendall(b"GET /met")
            slow.append(s)
        except OSError:
            break
    held = len(slow)
    t1 = time.monotonic()
    # The slow clients still hold their sockets: /metrics must answer once their header time
    # (5 s) is up, not stay gone.
    during = metrics_ok(timeout=10.0)
    t_during = time.monotonic() - t1
    for s in slow:
        s.close()
    t2 = time.monotonic()
    after = metrics_ok(timeout=4.0)
    res["300 slow clients"] = [during and after,
                               f"{held} slow connections; /metrics under them "
                               f"{'ok' if during else 'FAILED'} after {t_during:.1f} s, "
                               f"after them {'ok' if after else 'FAILED'} in {time.monotonic() - t2:.2f} s"]
    print(json.dumps(res))


def sh(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)


class Netns:
    """Two namespaces joined by a veth pair: 10.213.0.1 (daemon) and 10.213.0.2 (client)."""

    def __init__(self):
        tag = str(os.getpid() % 100000)
        self.a, self.b = f"fzA{tag}", f"fzB{tag}"
        sh("ip", "netns", "add", self.a)
        sh("ip", "netns", "add", self.b)
        sh("ip", "link", "add", "fzveth0", "netns", self.a, "type", "veth", "peer", "name", "fzveth1",
           "netns", self.b)
        for ns, dev, ip in ((self.a, "fzveth0", "10.213.0.1/24"), (self.b, "fzveth1", "10.213.0.2/24")):
            sh("ip", "-n", ns, "addr", "add", ip, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def close(self):
        for ns in (self.a, self.b):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, timeout=20)


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])
    except OSError:
        return None


def section_http(a, tmp):
    row = Row("HTTP abuse (netns)")
    ns = Netns()
    daemon = None
    try:
        cfg = write_config(os.path.join(tmp, "http.toml"),
                           f'[capture]\ninterface = "fzveth0"\ntimeout_ms = 100\n[model]\npath = "{MODEL}"\n'
                           f'[stats]\ninterval_s = 0\n[http]\nenabled = true\nlisten = "10.213.0.1:9108"\n')
        log = open(os.path.join(tmp, "http-daemon.log"), "wb+")
        daemon = subprocess.Popen(["ip", "netns", "exec", ns.a, "prlimit", "--nofile=128", a.bin, "run",
                                   "--config", cfg], stdout=subprocess.DEVNULL, stderr=log)
        t = time.monotonic()
        while time.monotonic() - t < 10:
            log.seek(0)
            if b"capturing on" in log.read() or daemon.poll() is not None:
                break
            time.sleep(0.1)
        ticks0, t0 = cpu_ticks(daemon.pid), time.monotonic()
        rc, out, err = run(["ip", "netns", "exec", ns.b, sys.executable, os.path.abspath(__file__),
                            "http-client", "10.213.0.1:9108"], 120)
        ticks1, t1 = cpu_ticks(daemon.pid), time.monotonic()
        if rc is None:
            row.hangs += 1
            row.problems.append("the HTTP client run did not finish in 120 s")
        try:
            res = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            res = {}
            row.problems.append(f"client output unreadable: {err.decode(errors='replace')[-300:]}")
        for name, (ok, detail) in res.items():
            row.cases += 1
            if not ok:
                row.problems.append(f"{name}: {detail}")
        if ticks0 is not None and ticks1 is not None:
            hz = os.sysconf("SC_CLK_TCK")
            cpu = (ticks1 - ticks0) / hz / max(t1 - t0, 1e-3)
            row.notes = f"daemon CPU during the abuse {cpu * 100:.0f}% of a core; " + \
                res.get("300 slow clients", [0, ""])[1]
            if cpu > 0.5:
                row.problems.append(f"daemon used {cpu * 100:.0f}% of a core under abuse (spinning?)")
        daemon.send_signal(signal.SIGTERM)
        try:
            rc = daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            rc = None
        log.seek(0)
        judge(row, "daemon under HTTP abuse", rc, log.read(), {0})
    finally:
        if daemon and daemon.poll() is None:
            daemon.kill()
        ns.close()
    return row


# ---------------------------------------------------------------- full disk

def events_in(path):
    """(whole JSON lines, torn or invalid lines)."""
    good = bad = 0
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        bad += 1
    for line in data.splitlines():
        try:
            json.loads(line)
            good += 1
        except ValueError:
            bad += 1
    return good, bad


def balance(row, what, err, delivered=None):
    """Every event sent (one flow record per scored flow, plus every alert sent: flow and host
    alerts) is written, dropped, failed or abandoned; written equals what arrived."""
    scored, w = stat(err, "scored"), stat(err, "sink_written")
    counted = [stat(err, k) for k in ("sink_dropped", "sink_failed", "sink_abandoned")]
    if scored is None or w is None or None in counted:
        row.problems.append(f"{what}: no final stats line")
        return None
    scored += stat(err, "alerts") or 0
    missing = scored - w - sum(counted)
    over = (w - delivered) if delivered is not None else 0
    lost = max(missing, 0) + max(over, 0)
    row.lost = (row.lost or 0) + lost
    if missing < 0:
        row.problems.append(f"{what}: counters exceed the events ({-missing} too many)")
    return scored, w, counted, delivered


def section_disk(a, tmp):
    row = Row("full-disk JSON sink")
    row.lost = 0
    mnt = os.path.join(tmp, "small")
    os.makedirs(mnt, exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", "size=256k", "fzfull", mnt)
    try:
        pcap = os.path.join(tmp, "3000-flows.pcap")
        udp_flows_pcap(pcap, 3000, 1000)
        notes = []
        for n, (speed, term_after) in enumerate((("max", None), ("1x", 2.0))):
            events = os.path.join(mnt, f"events{n}.json")
            for old in os.listdir(mnt):  # each case starts on an empty disk and fills it
                os.remove(os.path.join(mnt, old))
            cfg = write_config(os.path.join(tmp, f"disk{n}.toml"),
                               f'[model]\npath = "{MODEL}"\n[flow]\nflow_timeout_s = 0.05\n'
                               f'[alerts]\nflow_events = true\nqueue_size = 1000\nshutdown_timeout_s = 2.0\n'
                               f'[[alerts.sinks]]\ntype = "json"\npath = "{events}"\n[stats]\ninterval_s = 0\n')
            cmd = [a.bin, "replay", "--speed", speed, "--config", cfg, pcap]
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            stopped = None
            if term_after:
                time.sleep(term_after)
                p.send_signal(signal.SIGTERM)
                stopped = time.monotonic()
            try:
                _, err = p.communicate(timeout=30)
                rc = p.returncode
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
                rc = None
            row.cases += 1
            judge(row, f"replay --speed {speed} onto a full disk", rc, err, {0, 3})
            good, bad = events_in(events)
            if bad:
                row.problems.append(f"{bad} torn or invalid lines in the alert file ({speed})")
            b = balance(row, f"--speed {speed}", err, delivered=good)
            if stopped is not None and rc is not None:
                took = time.monotonic() - stopped
                notes.append(f"SIGTERM to exit {took:.1f} s (shutdown_timeout_s 2)")
                if took > 2.0 + 5.0:
                    row.hangs += 1
                    row.problems.append(f"stop took {took:.1f} s with a failing sink")
            if b:
                scored, w, (dr, fa, ab), _ = b
                notes.append(f"{speed}: {scored} events, {w} written = {good} lines, {dr} dropped, "
                             f"{fa} failed, {ab} abandoned")
        row.notes = "; ".join(notes)
    finally:
        subprocess.run(["umount", mnt], timeout=20)
    return row


# ---------------------------------------------------------------- collector that disappears

class TcpCollector(threading.Thread):
    """Counts syslog messages; away from `down_at` to `up_at` seconds after start."""

    def __init__(self, down_at, up_at, stop_at):
        super().__init__(daemon=True)
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.srv.listen(16)
        self.down_at, self.up_at, self.stop_at = down_at, up_at, stop_at
        self.count = 0
        self.t0 = time.monotonic()

    def run(self):
        conns, phase = [], "up"
        while time.monotonic() - self.t0 < self.stop_at:
            el = time.monotonic() - self.t0
            if phase == "up" and el >= self.down_at:
                for c in conns:
                    self.drain(c, 0.05)
                    c.close()
                conns = []
                self.srv.close()
                phase = "down"
            elif phase == "down" and el >= self.up_at:
                self.srv = socket.socket()
                self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self.srv.bind(("127.0.0.1", self.port))
                self.srv.listen(16)
                phase = "up2"
            if phase == "down":
                time.sleep(0.01)
                continue
            self.srv.settimeout(0.01)
            try:
                c, _ = self.srv.accept()
                conns.append(c)
            except (socket.timeout, OSError):
                pass
            for c in conns:
                self.drain(c, 0.0)
        for c in conns:
            self.drain(c, 0.2)

    def drain(self, c, wait):
        c.settimeout(wait if wait > 0 else 0.001)
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                self.count += d.count(b"event_type=")
        except (socket.timeout, OSError):
            return


def section_collector(a, tmp):
    row = Row("collector away and back")
    row.lost = 0
    pcap = os.path.join(tmp, "paced.pcap")
    udp_flows_pcap(pcap, 1500, 3000)  # 4.5 s of capture time
    col = TcpCollector(down_at=1.5, up_at=4.0, stop_at=10.0)
    col.start()
    cfg = write_config(os.path.join(tmp, "tcp.toml"),
                       f'[model]\npath = "{MODEL}"\n[flow]\nflow_timeout_s = 0.05\n'
                       f'[alerts]\nflow_events = true\nqueue_size = 100000\nshutdown_timeout_s = 3.0\n'
                       f'[[alerts.sinks]]\ntype = "syslog"\ntransport = "tcp"\naddress = "127.0.0.1:{col.port}"\n'
                       f'message = "kv"\n[stats]\ninterval_s = 0\n')
    rc, _, err = run([a.bin, "replay", "--speed", "1x", "--config", cfg, pcap], 30)
    col.join(timeout=10)
    row.cases += 1
    judge(row, "replay with a TCP collector away 2.5 s", rc, err, {0})
    # Syslog over TCP has no acknowledgements: what sat in the connection's buffers when the
    # collector went away (the collector's unread bytes, the message written before the reset)
    # is lost without the sensor knowing (README). 1-2 measured; more is an uncounted loss.
    in_flight_allowance = 3
    b = balance(row, "tcp", err)
    if b:
        scored, w, (dr, fa, ab), _ = b
        unknown = w - col.count
        if unknown > in_flight_allowance:
            row.lost += unknown - in_flight_allowance
            row.problems.append(f"{unknown} events counted written but not received")
        row.notes = (f"tcp: {scored} events, {col.count} received, {w} written, {fa} failed, {dr} dropped, "
                     f"{ab} abandoned; unknowable in-flight {max(unknown, 0)} (allowed {in_flight_allowance})")
    # UDP: measured for the README, not judged (UDP has no delivery report).
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    got = [0]
    stop = threading.Event()

    def udp_rx():
        t0 = time.monotonic()
        sock = rx
        while not stop.is_set():
            el = time.monotonic() - t0
            if sock is not None and 1.5 <= el < 3.0:
                sock.close()
                sock = None
            if sock is None:
                if el >= 3.0:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(("127.0.0.1", port))
                else:
                    time.sleep(0.01)
                    continue
            sock.settimeout(0.01)
            try:
                got[0] += sock.recv(65536).count(b"event_type=")
            except (socket.timeout, OSError):
                pass
        if sock is not None:
            sock.close()

    th = threading.Thread(target=udp_rx, daemon=True)
    th.start()
    cfg = write_config(os.path.join(tmp, "udp.toml"),
                       open(cfg).read().replace('transport = "tcp"', 'transport = "udp"')
                       .replace(f"127.0.0.1:{col.port}", f"127.0.0.1:{port}"))
    rc, _, err = run([a.bin, "replay", "--speed", "1x", "--config", cfg, pcap], 30)
    time.sleep(0.3)
    stop.set()
    th.join(timeout=5)
    row.cases += 1
    judge(row, "replay with a UDP collector away 1.5 s", rc, err, {0})
    w, fa = stat(err, "sink_written"), stat(err, "sink_failed")
    row.notes += f"; udp (not judged): {w} written, {got[0]} received, {fa} failed"
    return row


# ---------------------------------------------------------------- main

def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "http-client":
        http_client(sys.argv[2])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "flowsentry"))
    ap.add_argument("--pcaps", default=os.path.join(ROOT, "..", "shared", "pcaps"))
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--pcap-cases", type=int, default=1200)
    ap.add_argument("--config-cases", type=int, default=300)
    ap.add_argument("--model-cases", type=int, default=200)
    ap.add_argument("--budget-s", type=float, default=200.0, help="time for the mutation sections")
    ap.add_argument("--only", default="", help="comma-separated sections")
    a = ap.parse_args()
    for need, what in ((a.bin, "flowsentry binary (cargo build --release)"), (a.pcaps, "shared captures")):
        if not os.path.exists(need):
            print(f"fault suite: missing {what}: {need}", file=sys.stderr)
            return 1
    if os.geteuid() != 0:
        print("fault suite: needs root (tmpfs, network namespaces): NOT RUN = FAILED", file=sys.stderr)
        return 1
    rng = random.Random(a.seed)
    only = set(filter(None, a.only.split(",")))
    started = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory(prefix="fs-fault-") as tmp:
        budget = a.budget_s
        plan = [
            ("pcap", lambda: section_pcap(a, rng, tmp, time.monotonic() + budget * 0.5)),
            ("config", lambda: section_config_or_model(a, rng, tmp, time.monotonic() + budget * 0.2, "config")),
            ("model", lambda: section_config_or_model(a, rng, tmp, time.monotonic() + budget * 0.2, "model")),
            ("http", lambda: section_http(a, tmp)),
            ("disk", lambda: section_disk(a, tmp)),
            ("collector", lambda: section_collector(a, tmp)),
        ]
        for name, f in plan:
            if only and name not in only:
                continue
            t = time.monotonic()
            try:
                row = f()
            except Exception as e:  # the harness itself failing is a failure, said plainly
                row = Row(name)
                row.problems.append(f"harness error: {type(e).__name__}: {e}")
            row.notes = (row.notes + f" [{time.monotonic() - t:.0f} s]").strip()
            rows.append(row)
            print(f"  {row.name}: {row.cases} cases in {time.monotonic() - t:.1f} s", file=sys.stderr, flush=True)
    print(f"\nfault-injection suite (seed {a.seed}, {time.monotonic() - started:.0f} s)\n")
    print(f"| {'section':24} | {'cases':>5} | {'panics':>6} | {'hangs':>5} | {'events lost uncounted':>21} | result |")
    print(f"|{'-' * 26}|{'-' * 7}|{'-' * 8}|{'-' * 7}|{'-' * 23}|--------|")
    for r in rows:
        lost = "-" if r.lost is None else str(r.lost)
        print(f"| {r.name:24} | {r.cases:>5} | {r.panics:>6} | {r.hangs:>5} | {lost:>21} | "
              f"{'FAIL' if r.failed() else 'ok':6} |")
    total = lambda k: sum(getattr(r, k) for r in rows)
    print(f"| {'total':24} | {total('cases'):>5} | {total('panics'):>6} | {total('hangs'):>5} | "
          f"{sum(r.lost or 0 for r in rows):>21} | {'FAIL' if any(r.failed() for r in rows) else 'ok':6} |")
    print()
    for r in rows:
        if r.notes:
            print(f"{r.name}: {r.notes}")
        for p in r.problems[:20]:
            print(f"  FAIL {r.name}: {p}")
        if len(r.problems) > 20:
            print(f"  ... and {len(r.problems) - 20} more")
    failed = any(r.failed() for r in rows)
    print(f"\n{sum(1 for r in rows if not r.failed())} passed, {sum(1 for r in rows if r.failed())} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
