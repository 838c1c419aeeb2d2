#!/usr/bin/env python3
"""bench/dnsprobe.py: one timed DNS query, for bench/sparse.sh.

Timing happens inside this process (time.perf_counter around the socket
calls), so neither Python's start-up nor a fork is in the figures.

  dnsprobe.py udp HOST PORT NAME
      one A query over UDP; prints "udp <ms> <rcode> <sent> <answered>", the
      last two as Unix times (s, 6 decimals)
  dnsprobe.py dot HOST PORT NAME CAFILE SNI
      a fresh TCP connection, a full TLS handshake (new context: no session
      to resume) and one A query; prints
      "dot <connect ms> <handshake ms> <query ms> <total ms> <rcode> <tls version>"
  dnsprobe.py idle HOST PORT NAME CAFILE SNI MAXWAIT
      opens a DoT connection, asks one query, then waits up to MAXWAIT s for
      the server to close it; prints "idle <seconds until closed>" (or
      "idle none" if it stayed open): what the server's idle timeout is.
  dnsprobe.py statsd PORT OUTFILE SECONDS
      a statsd receiver on 127.0.0.1:PORT/udp for SECONDS: appends each line
      received to OUTFILE as "<Unix time received> <line>", flushed at once,
      so that metric events can be set against query times.

Exit status 0 when an answer came (any rcode), 1 on a timeout or error (and
"<mode> error <reason>" is printed). Traffic goes only where HOST says; the
callers pass 127.0.0.1.
"""

import os
import socket
import ssl
import struct
import sys
import time

TIMEOUT = 3.0
RCODES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"]


def query(name):
    qid = struct.unpack("!H", os.urandom(2))[0]
    msg = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        msg += bytes([len(label)]) + label.encode()
    return qid, msg + b"\x00" + struct.pack("!HH", 1, 1)


def rcode(qid, answer):
    if len(answer) < 12:
        raise ValueError("short answer")
    rid, flags = struct.unpack("!HH", answer[:4])
    if rid != qid:
        raise ValueError("answer id %d, asked %d" % (rid, qid))
    rc = flags & 0xF
    return RCODES[rc] if rc < len(RCODES) else "RCODE%d" % rc


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed by server")
        buf += chunk
    return buf


def dot_connect(host, port, cafile, sni):
    ctx = ssl.create_default_context(cafile=cafile)
    t0 = time.perf_counter()
    raw = socket.create_connection((host, port), timeout=TIMEOUT)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t1 = time.perf_counter()
    s = ctx.wrap_socket(raw, server_hostname=sni)  # handshakes here
    t2 = time.perf_counter()
    return s, t0, t1, t2


def dot_exchange(s, name):
    qid, msg = query(name)
    s.sendall(struct.pack("!H", len(msg)) + msg)
    (n,) = struct.unpack("!H", recv_exact(s, 2))
    return rcode(qid, recv_exact(s, n))


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    try:
        if mode == "udp" and len(argv) == 5:
            host, port, name = argv[2], int(argv[3]), argv[4]
            qid, msg = query(name)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(TIMEOUT)
            s.connect((host, port))
            w0 = time.time()
            t0 = time.perf_counter()
            s.send(msg)
            answer = s.recv(65535)
            t1 = time.perf_counter()
            w1 = time.time()
            print("udp %.3f %s %.6f %.6f" % ((t1 - t0) * 1e3, rcode(qid, answer), w0, w1))
            return 0
        if mode == "dot" and len(argv) == 7:
            host, port, name, cafile, sni = argv[2], int(argv[3]), argv[4], argv[5], argv[6]
            s, t0, t1, t2 = dot_connect(host, port, cafile, sni)
            rc = dot_exchange(s, name)
            t3 = time.perf_counter()
            version = s.version()
            s.close()
            print("dot %.3f %.3f %.3f %.3f %s %s" % (
                (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t3 - t0) * 1e3, rc, version))
            return 0
        if mode == "idle" and len(argv) == 8:
            host, port, name, cafile, sni = argv[2], int(argv[3]), argv[4], argv[5], argv[6]
            maxwait = float(argv[7])
            s, _, _, _ = dot_connect(host, port, cafile, sni)
            dot_exchange(s, name)
            t0 = time.perf_counter()
            s.settimeout(maxwait)
            try:
                data = s.recv(1)
                closed = "%.1f" % (time.perf_counter() - t0) if not data else "data"
            except socket.timeout:
                closed = "none"
            except (ConnectionError, ssl.SSLError, OSError):
                closed = "%.1f" % (time.perf_counter() - t0)
            s.close()
            print("idle %s" % closed)
            return 0
        if mode == "statsd" and len(argv) == 5:
            port, out, seconds = int(argv[2]), argv[3], float(argv[4])
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", port))
            end = time.monotonic() + seconds
            with open(out, "a", encoding="utf-8") as f:
                f.write("%.6f # listening\n" % time.time())
                f.flush()
                while True:
                    left = end - time.monotonic()
                    if left <= 0:
                        return 0
                    s.settimeout(left)
                    try:
                        data = s.recv(65535)
                    except socket.timeout:
                        return 0
                    now = time.time()
                    for line in data.decode("utf-8", "replace").splitlines():
                        if line:
                            f.write("%.6f %s\n" % (now, line))
                    f.flush()
    except (OSError, ValueError, ssl.SSLError) as e:
        print("%s error %s" % (mode, str(e).replace(" ", "_") or type(e).__name__))
        return 1
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
