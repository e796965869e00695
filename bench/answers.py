"""answers.py PARLEYD [N] - resumable agent answers, measured (issue 14).

Starts its own redis-server and parleyd (2 workers, the built-in agent,
which answers "You said: <question>" a word per agent_delay) and measures:

  resume     the time from a reconnect (connect() of a new socket, with the
             last chunk id it had) to the first chunk it missed, over
             WebSocket (?last_event_id=), a room's SSE stream and the private
             answer stream /api/chat/stream (Last-Event-ID): 200 each
  coalesce   chunk events per answer with agent_coalesce 0 and 20ms, for a
             102-word answer at a word every 5 ms (a fast model), and
             Redis's CPU per answer
  many       N (1,000) answers at once in N rooms, each with its asker and a
             viewer on WebSockets; half the viewers drop after their fifth
             chunk and come back 200 ms later with ?last_event_id=: every
             viewer must end with the whole answer, each chunk once and in
             order, then the stored message; Redis memory and the workers'
             Pss per answer in progress

Every process it starts is stopped when it ends.  Loopback only."""

import base64
import json
import os
import re
import selectors
import socket
import statistics
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
if len(sys.argv) > 1:
    os.environ["PARLEYD"] = os.path.abspath(sys.argv[1])     # read by harness on import
import harness  # noqa: E402
from agent_concurrent import pss_kb  # noqa: E402  (same directory)


def redis_info(env, section, field):
    out = harness.redis_cli(env.redis, "INFO", section)
    m = re.search(r"^%s:([\d.]+)" % re.escape(field), out, re.M)
    return float(m.group(1)) if m else 0.0


def redis_cpu(env):
    return redis_info(env, "cpu", "used_cpu_sys") + redis_info(env, "cpu", "used_cpu_user")


def id_key(i):
    ms, seq = i.split("-")
    return int(ms), int(seq)


class WS:
    """A minimal non-blocking WebSocket client: text frames in and out."""

    def __init__(self, port, path):
        self.sock = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
        self.sock.setblocking(False)
        self.buf = b""
        self.upgraded = False

    def send(self, doc):
        payload = json.dumps(doc).encode()
        mask = os.urandom(4)
        head = bytes([0x81]) + (bytes([0x80 | len(payload)]) if len(payload) < 126
                                else bytes([0x80 | 126]) + struct.pack("!H", len(payload)))
        self.sock.setblocking(True)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        self.sock.setblocking(False)

    def read(self):
        """The JSON documents that arrived; None when the server closed."""
        try:
            data = self.sock.recv(262144)
        except BlockingIOError:
            return []
        if not data:
            return None
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return []
            assert self.buf.startswith(b"HTTP/1.1 101"), self.buf[:80]
            self.buf = self.buf[end + 4:]
            self.upgraded = True
        docs = []
        while len(self.buf) >= 2:
            n, at = self.buf[1] & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    break
                n, at = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    break
                n, at = struct.unpack("!Q", self.buf[2:10])[0], 10
            if len(self.buf) < at + n:
                break
            opcode, payload = self.buf[0] & 0x0F, self.buf[at:at + n]
            self.buf = self.buf[at + n:]
            if opcode == 1:
                docs.append(json.loads(payload))
            elif opcode == 8:
                return None
        return docs

    def close(self):
        self.sock.close()


def wait_docs(ws, predicate, timeout=10.0):
    """Reads WS (blocking in a loop) until PREDICATE accepts a document."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        docs = ws.read()
        if docs is None:
            raise AssertionError("closed")
        for d in docs:
            if predicate(d):
                return d
        time.sleep(0.0005)
    raise AssertionError("timed out")


def question(n, words):
    return " ".join("w%d-%d" % (n, i) for i in range(words))


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


# --- resume: reconnect to first missed chunk -------------------------------

def bench_resume(env, p, token, trials=200):
    results = {}
    for kind in ("ws", "sse", "stream"):
        times = []
        for t in range(trials):
            room = "resume%s%d" % (kind, t)
            if kind == "stream":            # the private answer stream, resumed
                s = socket.create_connection(("127.0.0.1", p.port))
                s.sendall(("GET /api/chat/stream?query=%s&token=%s HTTP/1.1\r\nHost: b\r\n\r\n"
                           % (question(t, 30).replace(" ", "+"), token)).encode())
                buf = b""
                while b"\nevent: ai_chunk" not in buf:
                    buf += s.recv(65536)
                last = re.search(rb"id: (\S+)\nevent: ai_chunk", buf).group(1).decode()
                time.sleep(0.05)
                s.close()
                started = time.monotonic()
                s = socket.create_connection(("127.0.0.1", p.port))
                s.sendall(("GET /api/chat/stream?token=%s HTTP/1.1\r\nHost: b\r\nLast-Event-ID: %s\r\n\r\n"
                           % (token, last)).encode())
                buf = b""
                while b"event: ai_chunk" not in buf:
                    buf += s.recv(65536)
                times.append(time.monotonic() - started)
                s.close()
                continue
            asker = WS(p.port, "/ws/chat/%s?token=%s" % (room, token))
            wait_docs(asker, lambda d: d["type"] == "welcome")
            asker.send({"type": "ask", "content": question(t, 30)})
            last = wait_docs(asker, lambda d: d["type"] == "ai_chunk")["id"]
            time.sleep(0.05)                # a couple of chunks go by
            started = time.monotonic()
            if kind == "ws":
                v = WS(p.port, "/ws/chat/%s?token=%s&last_event_id=%s" % (room, token, last))
                wait_docs(v, lambda d: d["type"] == "ai_chunk" and id_key(d["id"]) > id_key(last))
                times.append(time.monotonic() - started)
                v.close()
            else:
                s = socket.create_connection(("127.0.0.1", p.port))
                s.sendall(("GET /api/rooms/%s/events?token=%s HTTP/1.1\r\nHost: b\r\nLast-Event-ID: %s\r\n\r\n"
                           % (room, token, last)).encode())
                buf = b""
                while b"event: ai_chunk" not in buf:
                    buf += s.recv(65536)
                times.append(time.monotonic() - started)
                s.close()
            asker.close()
        results[kind] = times
        print("resume over %-6s  reconnect to first missed chunk: p50 %.2f ms, p99 %.2f ms (%d reconnects)"
              % (kind, statistics.median(times) * 1000, pct(times, 99) * 1000, len(times)), flush=True)
    return results


# --- coalescing: events per answer ---------------------------------------------

def bench_coalesce(env, answers=20):
    """ANSWERS answers at once (so that Redis's idle time hardly counts)."""
    for coalesce in ("0", "20ms"):
        p = env.parleyd({"workers": "2", "agent_delay": "5ms", "agent_coalesce": coalesce, "rate_limit": "0",
                         "agent_max_per_user": "0"})
        token = harness.session(p, "coalescer")
        clients = []
        for i in range(answers):
            c = WS(p.port, "/ws/chat/coalesce%s%d?token=%s" % (coalesce, i, token))
            wait_docs(c, lambda d: d["type"] == "welcome")
            clients.append(c)
        cpu0 = redis_cpu(env)
        for i, c in enumerate(clients):
            c.send({"type": "ask", "content": question(i, 100)})
        counts = []
        for c in clients:
            n = [0]

            def done(d):
                n[0] += d["type"] == "ai_chunk"
                return d["type"] == "ai_done"
            wait_docs(c, done, 30)
            counts.append(n[0])
        cpu = (redis_cpu(env) - cpu0) / answers
        for c in clients:
            c.close()
        print("coalesce %-5s  chunk events per 102-word answer: median %d (min %d, max %d); Redis CPU per answer "
              "%.2f ms" % (coalesce, statistics.median(counts), min(counts), max(counts), cpu * 1000), flush=True)
        p.stop()


# --- many answers at once, half the viewers reconnecting ----------------------

def bench_many(env, p, token, n):
    sel = selectors.DefaultSelector()
    words = 30
    expect = {}
    state = {}          # room -> dict
    for i in range(n):
        room = "many%d" % i
        expect[room] = "You said: " + question(i, words)
        state[room] = {"chunks": [], "ids": set(), "done": False, "message": None, "dropped": i % 2 == 1,
                       "welcomed": 0, "last": None, "lost": 0, "dup": 0}
        for role in ("asker", "viewer"):
            ws = WS(p.port, "/ws/chat/%s?token=%s" % (room, token))
            sel.register(ws.sock, selectors.EVENT_READ, (room, role, ws))
            state[room][role] = ws
    for i in range(n):              # the rooms exist already: what follows is the answers' own
        harness.publish(p, token, "many%d" % i, "hello")
    time.sleep(1)
    redis_before, pss_before = redis_info(env, "memory", "used_memory"), pss_kb(p.workers())
    peak_redis, peak_pss, reconnects = 0, 0, []
    deadline = time.monotonic() + 120
    pending_reconnect = []
    finished = 0
    while finished < n and time.monotonic() < deadline:
        now = time.monotonic()
        for t, room in list(pending_reconnect):
            if now >= t:
                pending_reconnect.remove((t, room))
                st = state[room]
                ws = WS(p.port, "/ws/chat/%s?token=%s&last_event_id=%s" % (room, token, st["last"]))
                sel.register(ws.sock, selectors.EVENT_READ, (room, "viewer", ws))
                reconnects.append(room)
        for key, _ in sel.select(timeout=0.05):
            room, role, ws = key.data
            st = state[room]
            docs = ws.read()
            if docs is None:
                sel.unregister(ws.sock)
                ws.close()
                continue
            for d in docs:
                if d["type"] == "welcome":
                    st["welcomed"] += 1
                    if st["welcomed"] == 2:     # both in: ask
                        st["asker"].send({"type": "ask", "content": question(int(room[4:]), words)})
                if role != "viewer":
                    continue
                if d["type"] == "ai_chunk":
                    if d["id"] in st["ids"]:
                        st["dup"] += 1
                        continue
                    if st["last"] and id_key(d["id"]) < id_key(st["last"]):
                        st["lost"] += 1     # out of order
                    st["ids"].add(d["id"])
                    st["chunks"].append(d["content"])
                    st["last"] = d["id"]
                    if st["dropped"] and len(st["chunks"]) == 5 and room not in reconnects:
                        sel.unregister(ws.sock)
                        ws.close()
                        pending_reconnect.append((time.monotonic() + 0.2, room))
                        break
                elif d["type"] == "message" and d.get("request_id"):
                    st["message"] = d
                elif d["type"] == "ai_done" and not st["done"]:
                    st["done"] = True
                    finished += 1
        if int(now * 2) != int((now - 0.05) * 2):       # about twice a second
            peak_redis = max(peak_redis, redis_info(env, "memory", "used_memory"))
            peak_pss = max(peak_pss, pss_kb(p.workers()))
    ok = [r for r in state if state[r]["done"] and "".join(state[r]["chunks"]) == expect[r]
          and state[r]["message"] and state[r]["message"]["content"] == expect[r]]
    dups = sum(st["dup"] for st in state.values())
    disorder = sum(st["lost"] for st in state.values())
    print("many: %d answers at once, %d viewers reconnected mid-answer: %d viewers got the whole answer once and in "
          "order (%d duplicate chunks, %d out of order), %d ended" %
          (n, len(reconnects), len(ok), dups, disorder, finished), flush=True)
    print("many: Redis used_memory %.0f -> peak %.0f kB (%.0f bytes per answer in progress); workers' Pss %d -> peak "
          "%d kB (%.0f bytes per answer in progress, its two connections open before)"
          % (redis_before / 1024, peak_redis / 1024, (peak_redis - redis_before) / n, pss_before, peak_pss,
             (peak_pss - pss_before) * 1024.0 / n), flush=True)
    for key in list(sel.get_map().values()):
        key.data[2].close()
    return len(ok) == n and dups == 0 and disorder == 0


def main():
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    env = harness.Env()
    try:
        p = env.parleyd({"workers": "2", "agent_delay": "20ms", "agent_max_concurrent": "100000",
                         "rate_limit": "0", "agent_coalesce": "0", "agent_max_per_user": "0"})
        token = harness.session(p, "bench")
        bench_resume(env, p, token)
        p.stop()
        bench_coalesce(env)
        p = env.parleyd({"workers": "2", "agent_delay": "100ms", "agent_max_concurrent": "100000",
                         "rate_limit": "0", "agent_max_per_user": "0"})
        token = harness.session(p, "many")
        good = bench_many(env, p, token, n)
    finally:
        env.close()
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
