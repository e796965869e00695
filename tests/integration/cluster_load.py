#!/usr/bin/env python3
"""cluster_load.py - the load of the cluster tests, run in processes of its
own (the test process stays free to restart instances, and on a small
machine the clients get a CPU share of their own).  Standard library only.

    python3 cluster_load.py subscribers    WebSocket and event-stream subscribers
    python3 cluster_load.py publisher      HTTP publishing at a steady rate

The first line on stdin is the configuration (a JSON object, below); every
further line is a command, answered by one JSON line on stdout:
{"cmd":"status"} gives the counts so far, {"cmd":"finish",...} the final
report, after which the process exits.  The end of stdin (the test is gone)
ends it too.

Subscribers {"port", "subscribers": [{"kind": "ws"|"sse", "room", "token",
"after"}]}: each is one client keeping one connection open through the
proxy in one selector loop.  When it loses the connection it reconnects
(backing off while it is refused) and resumes after the last message id it
was given, as a real client does: an event stream with Last-Event-ID; a
WebSocket, after the welcome, with {"type":"history"} for what lies between
its last id and the welcome's last_id, holding the live messages that
arrive meanwhile.  "after" is where each starts.  Every message id handed
to a subscriber is recorded; one that is not above the one before is a
violation (a duplicate or a reordering), recorded, never dropped silently.
finish {"expect": {room: last id}, "timeout": s} waits until every
subscriber has been given its room's last id (or the timeout passes) and
reports every subscriber's ids.

Publisher {"port", "token", "rooms", "rate", "threads", "prefix"}: message
n goes to rooms[n % len(rooms)], RATE a second over keep-alive connections,
with client_msg_id (and content) PREFIX-n.  Any failure - a connection
error, a timeout, a status other than 201 - is retried with the same
client_msg_id until a 201 names the message's id.  finish stops taking new
messages, completes those under way and reports every acknowledgement."""

import collections
import errno
import heapq
import http.client
import json
import os
import random
import selectors
import socket
import struct
import sys
import threading
import time

HISTORY_PAGE = 200          # parleyd's cap on one history answer
RETRY_MIN, RETRY_MAX = 0.1, 2.0
GIVE_UP = 60.0              # a message not acknowledged in this long is reported unacked


def id_key(text):
    """A stream id "<ms>-<seq>" as a comparable pair."""
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


def id_next(text):
    """The smallest id above TEXT (an exclusive "before" that includes TEXT)."""
    ms, seq = id_key(text)
    return "%d-%d" % (ms, seq + 1)


def ws_frame(opcode, payload):
    """A masked client frame."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class Subscriber:
    """One logical client and its current connection."""

    def __init__(self, loop, spec):
        self.loop = loop
        self.kind, self.room, self.token = spec["kind"], spec["room"], spec["token"]
        self.start = spec["after"]
        self.last_text, self.last = spec["after"], id_key(spec["after"])
        self.ids = []
        self.violations = []
        self.statuses = collections.Counter()
        self.opens = 0              # connections that got their welcome / 200
        self.failures = 0           # in a row, for the backoff
        self.sock = None
        self.live = False
        self._reset()

    def _reset(self):
        self.inbuf = bytearray()
        self.out = bytearray()
        self.state = "closed"       # connecting, head, open
        self.live = False
        self.welcomed = False
        self.held = None            # live ids held while history is fetched
        self.caught = None          # history ids fetched so far
        self.event = {}             # SSE event being read
        self.fragments = None       # a fragmented WebSocket message

    # --- connection --------------------------------------------------------

    def connect(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        err = self.sock.connect_ex(("127.0.0.1", self.loop.port))
        if err not in (0, errno.EINPROGRESS):
            self.sock.close()
            self.sock = None
            self.lost("connect errno %d" % err)
            return
        self.state = "connecting"
        self.loop.sel.register(self.sock, selectors.EVENT_WRITE, self)

    def request(self):
        if self.kind == "ws":
            key = "dGhlIHNhbXBsZSBub25jZQ=="
            lines = ["GET /ws/chat/%s HTTP/1.1" % self.room, "Host: 127.0.0.1", "Upgrade: websocket",
                     "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        else:
            lines = ["GET /api/rooms/%s/events HTTP/1.1" % self.room, "Host: 127.0.0.1",
                     "Accept: text/event-stream", "Last-Event-ID: " + self.last_text]
        lines.append("Authorization: Bearer " + self.token)
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def lost(self, why):
        """The connection ended (or never opened): reconnect after a pause
        that grows while attempts keep failing."""
        if self.sock is not None:
            try:
                self.loop.sel.unregister(self.sock)
            except (KeyError, ValueError):
                pass
            self.sock.close()
            self.sock = None
        if not self.live:
            self.failures += 1
        self.statuses[why] += 1
        self._reset()
        delay = min(RETRY_MAX, RETRY_MIN * 2 ** min(self.failures, 5)) * random.uniform(0.5, 1.0)
        self.loop.later(delay, self)

    def send(self, data):
        self.out += data
        self.flush()

    def flush(self):
        try:
            n = self.sock.send(self.out)
        except BlockingIOError:
            n = 0
        except OSError:
            return                  # the read side will see the end
        del self.out[:n]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.out else 0)
        self.loop.sel.modify(self.sock, events, self)

    def on_event(self, mask):
        if self.state == "connecting":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.lost("connect errno %d" % err)
                return
            self.state = "head"
            self.send(self.request())
            return
        if mask & selectors.EVENT_WRITE and self.out:
            self.flush()
        if not mask & selectors.EVENT_READ:
            return
        try:
            data = self.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError as e:
            self.lost("recv errno %d" % e.errno)
            return
        if not data:
            self.lost("eof")
            return
        self.inbuf += data
        if self.state == "head" and not self.read_head():
            return
        if self.state == "open":
            (self.read_frames if self.kind == "ws" else self.read_events)()

    def read_head(self):
        end = self.inbuf.find(b"\r\n\r\n")
        if end < 0:
            return False
        status = int(bytes(self.inbuf[:end]).split(b" ", 2)[1])
        del self.inbuf[:end + 4]
        if status != (101 if self.kind == "ws" else 200):
            self.lost("status %d" % status)
            return False
        self.state = "open"
        if self.kind == "sse":
            self.opened()
        return True

    def opened(self):
        self.opens += 1
        self.failures = 0
        self.live = True

    # --- delivery ----------------------------------------------------------

    def deliver(self, text):
        key = id_key(text)
        if key <= self.last:
            self.violations.append([text, self.last_text])
            return
        self.ids.append(text)
        self.last, self.last_text = key, text
        self.loop.delivered += 1

    # --- event streams -----------------------------------------------------

    def read_events(self):
        while True:
            end = self.inbuf.find(b"\n")
            if end < 0:
                return
            line = bytes(self.inbuf[:end]).rstrip(b"\r").decode()
            del self.inbuf[:end + 1]
            if line == "":
                self.dispatch(self.event)
                self.event = {}
            elif not line.startswith(":"):
                k, _, v = line.partition(":")
                self.event[k] = v[1:] if v.startswith(" ") else v

    def dispatch(self, event):
        kind = event.get("event")
        if kind == "message":
            self.deliver(event["id"])
        elif kind == "reset":
            self.violations.append(["reset", event.get("data")])

    # --- WebSockets --------------------------------------------------------

    def read_frames(self):
        while self.sock is not None:
            b = self.inbuf
            if len(b) < 2:
                return
            n, pos = b[1] & 0x7F, 2
            if n == 126:
                if len(b) < 4:
                    return
                n, pos = struct.unpack("!H", b[2:4])[0], 4
            elif n == 127:
                if len(b) < 10:
                    return
                n, pos = struct.unpack("!Q", b[2:10])[0], 10
            if len(b) < pos + n:
                return
            fin, opcode, payload = b[0] & 0x80, b[0] & 0x0F, bytes(b[pos:pos + n])
            del b[:pos + n]
            self.frame(fin, opcode, payload)

    def frame(self, fin, opcode, payload):
        if opcode == 0x9:
            self.send(ws_frame(0xA, payload))
        elif opcode == 0x8:
            self.send(ws_frame(0x8, payload[:2]))
            self.lost("close %d" % (struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005))
        elif opcode in (0x0, 0x1):
            self.fragments = (self.fragments or b"") + payload
            if fin:
                doc, self.fragments = json.loads(self.fragments), None
                self.message(doc)

    def message(self, doc):
        kind = doc.get("type")
        if kind == "welcome":
            self.welcomed = True
            self.opened()
            last = doc.get("last_id")
            if last is not None and id_key(last) > self.last:
                self.held, self.caught = [], []
                self.ask_history(id_next(last))
        elif kind == "history":
            self.on_history([m["id"] for m in doc["messages"]])
        elif kind == "message":
            if not self.welcomed:
                self.violations.append(["before welcome", doc["id"]])
            elif self.held is not None:
                self.held.append(doc["id"])
            else:
                self.deliver(doc["id"])
        elif kind == "error":
            self.statuses["error " + doc.get("code", "?")] += 1

    def ask_history(self, before):
        doc = {"type": "history", "before": before, "limit": HISTORY_PAGE}
        self.send(ws_frame(0x1, json.dumps(doc).encode()))

    def on_history(self, ids):
        if self.held is None:
            self.violations.append(["unasked history", len(ids)])
            return
        newer = [i for i in ids if id_key(i) > self.last]
        self.caught = newer + self.caught
        if len(ids) == HISTORY_PAGE and len(newer) == len(ids):
            self.ask_history(ids[0])        # older pages still hold unseen ids
            return
        for i in self.caught + self.held:
            self.deliver(i)
        self.held = self.caught = None

    def report(self):
        return {"kind": self.kind, "room": self.room, "start": self.start, "ids": self.ids,
                "violations": self.violations, "opens": self.opens, "statuses": dict(self.statuses)}


class SubscriberLoop:
    def __init__(self, cfg):
        self.port = cfg["port"]
        self.sel = selectors.DefaultSelector()
        self.timers = []
        self.seq = 0
        self.delivered = 0
        self.subs = [Subscriber(self, spec) for spec in cfg["subscribers"]]
        self.finish = None          # (expect, deadline) once asked to finish
        self.next_check = 0.0

    def later(self, delay, sub):
        self.seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self.seq, sub))

    def status(self):
        return {"total": len(self.subs), "live": sum(s.live and s.held is None for s in self.subs),
                "opens": sum(s.opens for s in self.subs), "delivered": self.delivered,
                "violations": sum(len(s.violations) for s in self.subs)}

    def finished(self):
        expect, deadline = self.finish
        if time.monotonic() < self.next_check:
            return False
        self.next_check = time.monotonic() + 0.1
        done = all(s.last >= expect[s.room] for s in self.subs if s.room in expect)
        return done or time.monotonic() > deadline

    def run(self, commands, pending):
        for s in self.subs:
            s.connect()
        self.sel.register(commands, selectors.EVENT_READ, None)
        pending = self.commands(pending)
        while True:
            timeout = max(0.0, self.timers[0][0] - time.monotonic()) if self.timers else 0.2
            for key, mask in self.sel.select(min(timeout, 0.2)):
                if key.data is not None:
                    key.data.on_event(mask)
                    continue
                chunk = os.read(commands, 65536)
                if not chunk:
                    return
                pending = self.commands(pending + chunk)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                heapq.heappop(self.timers)[2].connect()
            if self.finish is not None and self.finished():
                reply({"subscribers": [s.report() for s in self.subs], "status": self.status()})
                return

    def commands(self, pending):
        """Carries out the complete lines of PENDING; returns the rest."""
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            self.command(json.loads(line))
        return pending

    def command(self, cmd):
        if cmd["cmd"] == "status":
            reply(self.status())
        elif cmd["cmd"] == "finish":
            expect = {room: id_key(last) for room, last in cmd["expect"].items()}
            self.finish = (expect, time.monotonic() + cmd["timeout"])


class Publisher:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.next = 0
        self.stopping = False
        self.acks = []              # [room, client_msg_id, id, attempts]
        self.unacked = []           # [room, client_msg_id]
        self.statuses = collections.Counter()
        self.start = time.monotonic()
        self.threads = [threading.Thread(target=self.work, daemon=True) for _ in range(cfg["threads"])]

    def take(self):
        with self.lock:
            if self.stopping:
                return None
            self.next += 1
            return self.next - 1

    def work(self):
        conn = None
        while True:
            n = self.take()
            if n is None:
                break
            wait = self.start + n / self.cfg["rate"] - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            conn = self.publish(conn, n)
        if conn is not None:
            conn.close()

    def publish(self, conn, n):
        """Publishes message N until it is acknowledged; returns the
        connection to go on with."""
        room = self.cfg["rooms"][n % len(self.cfg["rooms"])]
        cmid = "%s-%d" % (self.cfg["prefix"], n)
        body = json.dumps({"content": cmid, "client_msg_id": cmid})
        headers = {"Content-Type": "application/json", "Authorization": "Bearer " + self.cfg["token"]}
        give_up = time.monotonic() + GIVE_UP
        attempt = 0
        while time.monotonic() < give_up:
            attempt += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.cfg["port"], timeout=10)
                conn.request("POST", "/api/rooms/%s/messages" % room, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.status == 201:
                    with self.lock:
                        self.acks.append([room, cmid, json.loads(data)["id"], attempt])
                    if resp.will_close:
                        conn.close()
                        conn = None
                    return conn
                why = "status %d" % resp.status
            except (OSError, http.client.HTTPException) as e:
                why = type(e).__name__
            with self.lock:
                self.statuses[why] += 1
            if conn is not None:
                conn.close()
                conn = None
            time.sleep(min(0.5, 0.02 * attempt))
        with self.lock:
            self.unacked.append([room, cmid])
        return conn

    def status(self):
        with self.lock:
            return {"acked": len(self.acks), "taken": self.next, "statuses": dict(self.statuses)}

    def run(self, commands):
        for t in self.threads:
            t.start()
        for line in commands:
            cmd = json.loads(line)
            if cmd["cmd"] == "status":
                reply(self.status())
            elif cmd["cmd"] == "finish":
                with self.lock:
                    self.stopping = True
                for t in self.threads:
                    t.join()
                reply({"acks": self.acks, "unacked": self.unacked, "statuses": dict(self.statuses),
                       "seconds": time.monotonic() - self.start})
                return


def reply(doc):
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def main():
    mode = sys.argv[1]
    if mode == "subscribers":
        # Unbuffered reads: the selector watches the descriptor itself.
        fd, pending = sys.stdin.fileno(), b""
        while b"\n" not in pending:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            pending += chunk
        line, pending = pending.split(b"\n", 1)
        SubscriberLoop(json.loads(line)).run(fd, pending)
    else:
        stdin = sys.stdin.buffer
        Publisher(json.loads(stdin.readline())).run(stdin)


if __name__ == "__main__":
    main()
