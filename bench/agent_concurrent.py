"""agent_concurrent.py PARLEYD [N] - N concurrent GET /api/chat/stream answers
against a slow OpenAI-compatible upstream (tests/integration/fakeai.py in
"slow" mode: a piece every 50 ms for ten seconds).  Starts its own
redis-server, fake upstream and parleyd (2 workers, agent = openai), opens N
streams at once, and reports how many got a first chunk and how many
finished cleanly, plus the workers' memory (Pss) before and while all N are
open.  Every process it starts is stopped when it ends."""

import os
import re
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
if len(sys.argv) > 1:
    os.environ["PARLEYD"] = os.path.abspath(sys.argv[1])     # read by harness on import
import harness  # noqa: E402
from fakeai import FakeAI  # noqa: E402


def pss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                total += int(re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M).group(1))
        except (OSError, AttributeError):
            pass
    return total


def main():
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    env = harness.Env()
    fake = FakeAI("slow")
    try:
        p = env.parleyd({"workers": "2", "agent": "openai", "agent_url": fake.url,
                         "agent_max_concurrent": str(n), "agent_max_per_user": "0", "agent_total_timeout": "60s"})
        token = harness.session(p, "bench")
        workers = p.workers()
        before = pss_kb(workers)
        sel = selectors.DefaultSelector()
        tail = {}
        req = ("GET /api/chat/stream?query=hi&token=%s HTTP/1.1\r\nHost: b\r\n\r\n" % token).encode()
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", p.port))
            s.sendall(req)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, i)
            tail[i] = b""
        first, done, clean = set(), set(), set()
        during, deadline = 0, time.monotonic() + 60
        while len(done) < n and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                i = key.data
                data = key.fileobj.recv(65536)
                tail[i] = (tail[i] + data)[-4096:]
                if b"event: ai_chunk" in tail[i]:
                    first.add(i)
                if b"event: ai_done" in tail[i]:
                    clean.add(i)
                if not data or i in clean:
                    done.add(i)
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
            if len(first) == n and not during:
                during = pss_kb(workers)
        print("agent concurrency: %d streams against a slow upstream: %d got a first chunk, %d ended with "
              "ai_done; workers' Pss %d kB before, %d kB with all %d open (%.1f kB per stream)"
              % (n, len(first), len(clean), before, during, n, (during - before) / n if during else 0))
    finally:
        fake.close()
        env.close()


if __name__ == "__main__":
    main()
