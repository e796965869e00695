"""The HAProxy deployment end to end (issue 11): the shipped etc/haproxy.cfg,
made runnable by tests/haproxy_conf.py and nothing else, in front of three
real parleyd instances that share one real redis-server; clients over
HTTP/1.1 (the plain front) and over HTTP/2 with TLS.

- Chat over WebSocket (HTTP/1.1, and HTTP/2 per RFC 8441), event streams
  with resume, publishing, history and the agent's answer stream go
  through, each event as it happens.
- No token and no ticket reaches any log; one request id runs from
  HAProxy's log through parleyd's to the client; parleyd logs the client's
  real address.
- A room's subscribers share one instance and Redis has one subscriber for
  it, while rooms spread over the instances.
- Under load - a publisher that retries with the same client_msg_id until
  it has an id, hundreds of subscribers that reconnect and resume - a
  rolling restart, a kill -9 of a whole instance, a HAProxy reload and a
  Redis restart lose nothing acknowledged, deliver nothing twice and keep
  every room in order."""

import collections
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest

import h2ws
from cluster_load import id_key
from harness import (SESSION_KEY, SLOW, CurlSSEClient, Env, SSEClient, free_port, kill, publish, redis_call,
                     redis_cli, session, spawn, wait_for)
from wsclient import WSClient

HERE = os.path.dirname(os.path.abspath(__file__))
LOAD = os.path.join(HERE, "cluster_load.py")
NAMES = ("parley1", "parley2", "parley3")


def metric(p, series):
    """The value of one series of instance P's /metrics."""
    _, _, body = p.request("GET", "/metrics")
    m = re.search(r"^%s (\d+)$" % re.escape(series), body.decode(), re.M)
    return int(m.group(1)) if m else 0


class Cluster:
    """redis-server, three parleyd instances on fixed ports (a restarted
    instance must come back where HAProxy expects it) and HAProxy with the
    shipped configuration in front of them."""

    def __init__(self, settings=None):
        self.env = Env()
        try:
            self.instances = []
            for name in NAMES:
                conf = {"listen": "127.0.0.1:%d" % free_port(), "workers": "1", "instance_id": name,
                        # HAProxy runs on this machine: believe its X-Forwarded-For.
                        "trusted_proxies": "127.0.0.1",
                        "drain_spread": "1s", "shutdown_timeout": "5s",
                        # Resuming clients must never find their last id trimmed.
                        "history_length": "1000000"}
                conf.update(settings or {})
                self.instances.append(self.env.parleyd(conf))
            self.haproxy = self.env.haproxy([(n, p.port) for n, p in zip(NAMES, self.instances)])
        except BaseException:
            self.env.close()
            raise

    @property
    def redis(self):
        return self.env.redis

    def close(self):
        self.env.close()

    def session(self, user):
        """A session made through HAProxy, as the application backend does."""
        return session(self.haproxy, user)

    def restart(self, i):
        """A rolling restart's step: SIGTERM to instance I; once it has
        exited and HAProxy has taken it out of the pool, start it again and
        wait until HAProxy sends it requests again.  Returns the seconds
        the graceful stop took."""
        t0 = time.monotonic()
        code = self.instances[i].stop()
        stopped = time.monotonic() - t0
        if code != 0:
            raise AssertionError("%s exited %r on SIGTERM" % (NAMES[i], code))
        self.haproxy.wait_servers(down=[NAMES[i]])
        self.instances[i].start()
        self.haproxy.wait_servers(up=[NAMES[i]])
        return stopped

    def crash(self, i, down_for=1.0):
        """kill -9 of instance I, master and children; HAProxy's checks
        take it out; after DOWN_FOR more seconds it starts again and
        rejoins the pool."""
        pids = self.instances[i].kill()
        self.haproxy.wait_servers(down=[NAMES[i]])
        time.sleep(down_for)
        self.instances[i].start()
        self.haproxy.wait_servers(up=[NAMES[i]])
        return pids

    def all_up(self):
        self.haproxy.wait_servers(up=NAMES)

    def heal(self):
        """Starts whatever a failed test left stopped; waits for the pool."""
        if self.redis.proc.poll() is not None:
            self.redis.start()
        for p in self.instances:
            if p.proc.poll() is not None:
                p.stop()
                p.start()
        self.all_up()


class Load:
    """Subscribers and a publisher (cluster_load.py processes) on a
    cluster, and the accounting at the end: every acknowledged message
    reached every subscriber of its room exactly once and in order, and
    the rooms' streams hold each client_msg_id once."""

    def __init__(self, test, cluster, tag, rooms=10, ws=15, sse=15, rate=200, procs=2):
        self.test, self.cluster = test, cluster
        self.rooms = ["%s-%d" % (tag, i) for i in range(rooms)]
        self.tag = tag
        self.t0 = time.monotonic()
        pub = cluster.session("%s-pub" % tag)
        # The first message of each room: everyone starts right after it.
        self.seed = {}
        for room in self.rooms:
            status, body = publish(cluster.haproxy, pub, room, "seed")
            test.assertEqual(status, 201, body)
            self.seed[room] = body["id"]
        tokens = [cluster.session("%s-u%d" % (tag, i)) for i in range(12)]
        specs = [{"kind": kind, "room": room, "after": self.seed[room]}
                 for room in self.rooms for kind, n in (("ws", ws), ("sse", sse)) for _ in range(n)]
        for i, spec in enumerate(specs):
            spec["token"] = tokens[i % len(tokens)]
        self.subscribers = [self._start("subscribers", {"port": cluster.haproxy.http, "subscribers": specs[i::procs]})
                            for i in range(procs)]
        self.total = len(specs)
        wait_for(lambda: self.live() == self.total, timeout=30, interval=0.2, what="every subscriber live")
        self.publisher = self._start("publisher", {"port": cluster.haproxy.http, "token": pub, "rooms": self.rooms,
                                                   "rate": rate, "threads": 8, "prefix": tag})

    def _start(self, mode, cfg):
        proc = spawn([sys.executable, LOAD, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.test.addCleanup(kill, proc)
        proc.stdin.write(json.dumps(cfg).encode() + b"\n")
        proc.stdin.flush()
        return proc

    @staticmethod
    def ask(proc, cmd, timeout=10.0):
        proc.stdin.write(json.dumps(cmd).encode() + b"\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], timeout * SLOW)
        line = proc.stdout.readline() if ready else b""
        if not line:
            raise AssertionError("cluster_load.py gave no answer to %r (exit %r)" % (cmd, proc.poll()))
        return json.loads(line)

    def live(self):
        return sum(self.ask(p, {"cmd": "status"})["live"] for p in self.subscribers)

    def run_for(self, seconds):
        time.sleep(seconds)

    def finish(self, watchers=()):
        """Stops publishing, waits for the subscribers (and WATCHERS, see
        H2Watcher) to catch up, checks everything and returns the figures."""
        pub = self.ask(self.publisher, {"cmd": "finish"}, timeout=90)
        self.test.assertEqual(pub["unacked"], [], "messages never acknowledged")
        expected = self.expected(pub["acks"])
        last = {room: ids[-1] for room, ids in expected.items() if ids}
        reports = []
        for p in self.subscribers:
            reports += self.ask(p, {"cmd": "finish", "expect": last, "timeout": 30 * SLOW}, timeout=40)["subscribers"]
        for w in watchers:
            reports.append(w.finish(last[w.room]))
        self.check_streams(expected)
        deliveries = self.check_subscribers(expected, reports)
        self.check_everyone_left()
        figures = collections.OrderedDict([
            ("acked", len(pub["acks"])),
            ("retried", sum(1 for a in pub["acks"] if a[3] > 1)),
            ("publish failures", sum(pub["statuses"].values())),
            ("rate", round(len(pub["acks"]) / pub["seconds"])),
            ("subscribers", len(reports)),
            ("ws", sum(r["kind"] == "ws" for r in reports)),
            ("sse", sum(r["kind"] == "sse" for r in reports)),
            ("h2", sum(r["kind"].startswith("h2") for r in reports)),
            ("deliveries checked", deliveries),
            ("reconnects", sum(r["opens"] - 1 for r in reports)),
            ("seconds", round(time.monotonic() - self.t0, 1)),
        ])
        why = collections.Counter()
        for r in reports:
            why.update(r["statuses"])
        print("\n%s: %s\n  publish failures: %s\n  subscriber connections ended: %s"
              % (self.tag, ", ".join("%s %s" % kv for kv in figures.items()),
                 dict(pub["statuses"]), dict(why)))
        sys.stdout.flush()
        return figures

    def expected(self, acks):
        """{room: acknowledged ids in order}; one id per client_msg_id."""
        ids = collections.defaultdict(list)
        for room, _, mid, _ in acks:
            ids[room].append(mid)
        # Stream ids are unique within a room's stream, not across rooms.
        self.test.assertEqual(len({(a[0], a[2]) for a in acks}), len(acks), "two client_msg_ids got one id")
        self.test.assertEqual(len({a[1] for a in acks}), len(acks), "a client_msg_id acknowledged twice")
        return {room: sorted(ids[room], key=id_key) for room in self.rooms}

    def check_streams(self, expected):
        """Each room's stream after its seed is exactly the acknowledged
        messages: a retry stored nothing twice, nothing is missing."""
        for room in self.rooms:
            entries = redis_call(self.cluster.redis, "XRANGE", "parley:room:%s:log" % room,
                                 "(" + self.seed[room], "+")
            cmids = [dict(zip(fields[::2], fields[1::2])).get("client_msg_id") for _, fields in entries]
            self.test.assertEqual(len(cmids), len(set(cmids)), "duplicate client_msg_id in " + room)
            self.test.assertEqual([mid for mid, _ in entries], expected[room], "the stream of " + room)

    def check_everyone_left(self):
        """Every subscriber has gone: no room counts anyone in, whatever
        the instances went through (presence held by a killed instance
        included)."""
        def members():
            counts = {room: redis_call(self.cluster.redis, "HGETALL", "parley:room:%s:members" % room)
                      for room in self.rooms}
            return {room: n for room, n in counts.items() if n}
        try:
            wait_for(lambda: not members(), timeout=5, interval=0.1, what="rooms to empty")
        except AssertionError:
            self.test.fail("members left in rooms after every subscriber went: %s" % members())

    def check_subscribers(self, expected, reports):
        """Every subscriber got every acknowledged message of its room
        after its start, once, in order; returns the deliveries checked."""
        bad = []
        checked = 0
        for n, r in enumerate(reports):
            want = [i for i in expected[r["room"]] if id_key(i) > id_key(r["start"])]
            checked += len(r["ids"])
            if r["violations"] or r["ids"] != want:
                have = set(r["ids"])
                missing = [i for i in want if i not in have]
                bad.append("subscriber %d (%s, %s, %d opens): %d missing (first %s), %d extra, violations %s"
                           % (n, r["kind"], r["room"], r["opens"], len(missing), missing[:3],
                              len(have - set(want)), r["violations"][:3]))
        if bad:
            self.test.fail("%d of %d subscribers did not get exactly their room's messages:\n  %s"
                           % (len(bad), len(reports), "\n  ".join(bad[:10])))
        return checked


def curl_h2(port, method, path, headers=None, body=None, source=None):
    """One request over HTTP/2 with TLS through curl: (status line,
    headers dict, body bytes).  SOURCE is the local address to send from."""
    argv = ["curl", "-sk", "--http2", "-i", "--max-time", str(int(10 * SLOW)), "-X", method]
    if source:
        argv += ["--interface", source]
    for kv in (headers or {}).items():
        argv += ["-H", "%s: %s" % kv]
    if body is not None:
        argv += ["--data-binary", body]
    out = subprocess.run(argv + ["https://127.0.0.1:%d%s" % (port, path)], capture_output=True,
                         timeout=15 * SLOW, check=True).stdout
    head, _, data = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(":", 1) for line in lines[1:])
    return lines[0].strip(), {k.strip().lower(): v.strip() for k, v in fields.items()}, data


def bearer(token):
    return {"Authorization": "Bearer " + token}


@unittest.skipUnless(all(shutil.which(t) for t in ("haproxy", "openssl", "curl")),
                     "haproxy, openssl and curl are needed (.ci/deps installs them)")
class ClusterTest(unittest.TestCase):
    """One cluster per class (SETTINGS for its instances); each test starts
    with it whole and closes the connections it opened with open()."""

    SETTINGS = None

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(cls.SETTINGS)
        cls.h = cls.cluster.haproxy

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def setUp(self):
        self.cluster.heal()
        self.closers = []
        self.addCleanup(lambda: [c() for c in reversed(self.closers)])

    def open(self, conn):
        """CONN (a WSClient or an SSEClient), closed when the test ends."""
        self.closers.append(conn.close if hasattr(conn, "wait_events") else conn.shutdown)
        return conn


class ThroughHaproxy(ClusterTest):
    """What clients do, through HAProxy."""

    # Slow words make a buffered answer stream easy to tell from a live one.
    SETTINGS = {"agent_delay": "100ms", "web_root": os.path.join(HERE, "..", "..", "web")}

    def ws_h1(self, room, token):
        return self.open(WSClient.connect(self.h.http, "/ws/chat/%s" % room, headers=bearer(token)))

    def ws_h2(self, room, token):
        return self.open(h2ws.connect(self.h.https, "/ws/chat/%s" % room, {"authorization": "Bearer " + token}))

    def sse(self, client, room, token, last=None):
        headers = bearer(token)
        if last is not None:
            headers["Last-Event-ID"] = last
        port = self.h.https if client is CurlSSEClient else self.h.http
        s = self.open(client(port, "/api/rooms/%s/events" % room, headers))
        self.assertEqual(s.wait_ready(), 200, getattr(s, "body", ""))
        return s

    def instance_of(self, request_id):
        """The index of the instance whose log has REQUEST_ID."""
        found = [i for i, p in enumerate(self.cluster.instances) if "event=request id=%s " % request_id in p.log()]
        self.assertEqual(len(found), 1, request_id)
        return found[0]

    def haproxy_line(self, request_id):
        """HAProxy's log line of REQUEST_ID (written when the request, or
        the WebSocket or stream it opened, ends)."""
        def line():
            return [l for l in self.h.log().splitlines() if " %s " % request_id in l]
        return wait_for(line, what="haproxy log line of " + request_id)[0]

    # --- 1. clients through HAProxy ----------------------------------------

    def test_websocket_chat_over_http1_and_http2(self):
        room = "through-ws"
        ta, tb, tc = (self.cluster.session(u) for u in ("ws-alice", "ws-bob", "ws-carol"))
        a = self.ws_h1(room, ta)
        self.assertEqual(a.recv_json()["type"], "welcome")
        b = self.ws_h2(room, tb)
        welcome = b.recv_json()
        self.assertEqual((welcome["type"], welcome["user"], welcome["room"]), ("welcome", "ws-bob", room))
        # carol straight on another instance: the room is shared through Redis.
        home = self.instance_of(a.response.headers["x-request-id"])
        other = self.cluster.instances[(home + 1) % 3]
        c = self.open(WSClient.connect(other.port, "/ws/chat/%s" % room, headers=bearer(tc)))
        self.assertEqual(c.recv_json()["type"], "welcome")
        for sender, receivers, text in ((a, (b, c), "over HTTP/1.1"), (b, (a, c), "over HTTP/2")):
            sender.send_json({"type": "message", "content": text, "client_msg_id": text})
            ack = sender.recv_json(type="ack")
            self.assertEqual(ack["client_msg_id"], text)
            for r in (sender,) + receivers:
                got = r.recv_json(type="message")
                self.assertEqual((got["id"], got["content"]), (ack["id"], text))
        # A history answer bigger than HTTP/2's initial 64 KiB window: b's
        # client has to give window back for it to arrive whole.
        big = [publish(self.h, ta, room, "%02d" % i + "x" * 3000)[1]["id"] for i in range(30)]
        b.send_json({"type": "history", "limit": 30})
        self.assertEqual([m["id"] for m in b.recv_json(type="history")["messages"]], big)
        for ws in (a, b, c):
            ws.close()
            self.assertEqual(ws.expect_close()[0], 1000)
        # HAProxy's own word that b's WebSocket went over HTTP/2 (and a's not).
        line_b = self.haproxy_line(b.response.headers["x-request-id"])
        self.assertRegex(line_b, r" 101 .* GET /ws/chat/%s HTTP/2\.0$" % room)
        line_a = self.haproxy_line(a.response.headers["x-request-id"])
        self.assertRegex(line_a, r" 101 .* GET /ws/chat/%s HTTP/1\.1$" % room)

    def check_event_stream(self, client):
        """Publishing, the room's event stream event by event, resume with
        Last-Event-ID and history, over CLIENT (h1 or h2)."""
        room = "through-sse-%s" % ("h2" if client is CurlSSEClient else "h1")
        token = self.cluster.session(room + "-u")
        s = self.sse(client, room, token)
        self.assertEqual(s.headers["content-type"], "text/event-stream")
        ids = []
        # Each event must arrive while nothing else is sent: a buffering
        # proxy would hold it (a 2 s wait fails instead of passing late).
        for i in range(4):
            t0 = time.monotonic()
            status, body = publish(self.h, token, room, "live %d" % i)
            self.assertEqual(status, 201)
            event = s.wait_events(i + 1, timeout=2, kind="message")[i]
            self.assertEqual((event["id"], event["json"]["content"]), (body["id"], "live %d" % i))
            self.assertLess(event["t"] - t0, 0.5 * SLOW)
            ids.append(body["id"])
            time.sleep(0.2)
        s.close()
        missed = [publish(self.h, token, room, "missed %d" % i)[1]["id"] for i in range(2)]
        s2 = self.sse(client, room, token, last=ids[-1])
        got = s2.wait_events(2, kind="message")
        self.assertEqual([e["id"] for e in got], missed)
        status, body = publish(self.h, token, room, "live again")
        got = s2.wait_events(3, kind="message")
        self.assertEqual([e["id"] for e in got], missed + [body["id"]])
        # History over HTTP: everything after the first message, in order.
        status, _, data = self.h.request("GET", "/api/rooms/%s/messages?after=%s" % (room, ids[0]),
                                         headers=bearer(token))
        self.assertEqual(status, 200)
        self.assertEqual([m["id"] for m in json.loads(data)["messages"]], ids[1:] + missed + [body["id"]])
        return s2

    def test_event_stream_over_http1(self):
        self.check_event_stream(SSEClient)

    def test_event_stream_over_http2(self):
        s = self.check_event_stream(CurlSSEClient)
        self.assertEqual(s.status_line, "HTTP/2 200")
        s.close()
        line = wait_for(lambda: [l for l in self.h.log().splitlines() if "/api/rooms/through-sse-h2/events" in l],
                        what="the stream's log line")[0]
        self.assertRegex(line, r" 200 .* GET /api/rooms/through-sse-h2/events HTTP/2\.0$")

    def test_publish_and_history_over_http2(self):
        token = self.cluster.session("h2-poster")
        headers = dict(bearer(token), **{"Content-Type": "application/json"})
        status, _, body = curl_h2(self.h.https, "POST", "/api/rooms/h2-posts/messages", headers,
                                  json.dumps({"content": "posted over h2", "client_msg_id": "h2-1"}))
        self.assertEqual(status, "HTTP/2 201")
        mid = json.loads(body)["id"]
        status, _, body = curl_h2(self.h.https, "GET", "/api/rooms/h2-posts/messages", bearer(token))
        self.assertEqual(status, "HTTP/2 200")
        self.assertEqual([(m["id"], m["content"]) for m in json.loads(body)["messages"]], [(mid, "posted over h2")])

    def test_a_stream_the_client_closes_ends_at_once(self):
        # An event stream's body runs until the connection ends, so HAProxy
        # relays it as a tunnel.  A client that closes it must end it at
        # parleyd too - its presence, the agent's work - not 30 s later
        # when "timeout client" finally fires.
        watcher = self.ws_h1("leaving", self.cluster.session("stayer"))
        watcher.recv_json(type="welcome")
        token = self.cluster.session("leaver")
        stream = self.sse(SSEClient, "leaving", token)
        self.assertEqual(watcher.recv_json(type="presence")["event"], "join")
        answer = self.open(SSEClient(self.h.http, "/api/chat/stream?query=" + "+".join(["word"] * 50),
                                     bearer(token)))
        answer.wait_events(1, kind="ai_chunk")
        t0 = time.monotonic()
        stream.close()
        answer.close()
        try:
            left = watcher.recv_json(type="presence", timeout=5 * SLOW)
        except socket.timeout:
            self.fail("the closed stream still counts its user in the room after 5 s")
        self.assertEqual((left["event"], left["user"]), ("leave", "leaver"))
        wait_for(lambda: sum(metric(p, 'parley_connections{transport="sse"}') for p in self.cluster.instances) == 0,
                 timeout=3, what="both streams to end at parleyd")
        self.assertLess(time.monotonic() - t0, 3 * SLOW)

    def check_agent_stream(self, client):
        token = self.cluster.session("asker-%s" % client.__name__)
        port = self.h.https if client is CurlSSEClient else self.h.http
        s = self.open(client(port, "/api/chat/stream?query=say+hello+world", bearer(token)))
        self.assertEqual(s.wait_ready(), 200)
        s.wait_events(1, kind="ai_done")
        chunks = [e for e in s.events if e.get("event") == "ai_chunk"]
        self.assertEqual("".join(e["json"]["content"] for e in chunks), "You said: say hello world")
        last = s.events[-1]
        self.assertEqual((last["event"], last["json"]["done"], last["json"]["content"]), ("ai_done", True, ""))
        # agent_delay is 100 ms a word: the words came apart, not in one lump.
        self.assertGreater(chunks[-1]["t"] - chunks[0]["t"], 0.05 * (len(chunks) - 1))
        wait_for(lambda: s.ended, what="the answer stream to end")

    def test_agent_answer_stream_over_http1(self):
        self.check_agent_stream(SSEClient)

    def test_agent_answer_stream_over_http2(self):
        self.check_agent_stream(CurlSSEClient)


class LogsAndRooms(ClusterTest):
    """What the operator sees: the logs, and where rooms live."""

    def logs(self):
        return [self.h.log()] + [p.log() for p in self.cluster.instances]

    def ticket(self, token):
        status, _, body = self.h.request("POST", "/api/tickets", headers=bearer(token))
        self.assertEqual(status, 201, body)
        return json.loads(body)["ticket"]

    # --- 2. the logs ---------------------------------------------------

    def test_no_token_or_ticket_in_any_log(self):
        room = "secrets"
        token = self.cluster.session("secret-keeper")
        tickets = [self.ticket(token) for _ in range(4)]
        q = "?token=" + token
        # Every way a token or a ticket travels in a URL, over both fronts.
        for ws in (WSClient.connect(self.h.http, "/ws/chat/%s%s" % (room, q)),
                   h2ws.connect(self.h.https, "/ws/chat/%s%s" % (room, q)),
                   WSClient.connect(self.h.http, "/ws/chat/%s?ticket=%s" % (room, tickets[0])),
                   h2ws.connect(self.h.https, "/ws/chat/%s?ticket=%s" % (room, tickets[1]))):
            self.open(ws)
            self.assertEqual(ws.recv_json(type="welcome")["room"], room)
        streams = [SSEClient(self.h.http, "/api/rooms/%s/events%s" % (room, q)),
                   CurlSSEClient(self.h.https, "/api/rooms/%s/events%s" % (room, q)),
                   SSEClient(self.h.http, "/api/rooms/%s/events?ticket=%s" % (room, tickets[2])),
                   CurlSSEClient(self.h.https, "/api/rooms/%s/events?ticket=%s" % (room, tickets[3])),
                   SSEClient(self.h.http, "/api/chat/stream?query=hi&token=" + token),
                   CurlSSEClient(self.h.https, "/api/chat/stream?query=hi&token=" + token)]
        for st in streams:
            self.open(st)
            self.assertEqual(st.wait_ready(), 200)
        # A used ticket, and the history with a token in the URL.
        self.assertEqual(self.h.request("GET", "/api/rooms/%s/events?ticket=%s" % (room, tickets[0]))[0], 401)
        self.assertEqual(self.h.request("GET", "/api/rooms/%s/messages%s" % (room, q))[0], 200)
        for close in reversed(self.closers):
            close()
        self.closers = []
        # Every one of those requests is in HAProxy's log (written as each
        # ended) and in parleyd's; no token, ticket or session key is.
        wait_for(lambda: len(re.findall(r" GET /ws/chat/secrets HTTP/", self.h.log())) == 4
                 and len(re.findall(r" GET /api/rooms/secrets/events HTTP/", self.h.log())) == 5
                 and len(re.findall(r" GET /api/chat/stream HTTP/", self.h.log())) == 2,
                 what="haproxy's lines for every request")
        parleyd = "".join(self.logs()[1:])
        self.assertEqual(len(re.findall(r"path=/ws/chat/secrets status=101", parleyd)), 4)
        for secret in [token, SESSION_KEY] + tickets:
            for log in self.logs():
                self.assertNotIn(secret, log)
        self.assertNotIn("token=", "".join(self.logs()))
        self.assertNotIn("ticket=", "".join(self.logs()))

    def test_one_request_id_end_to_end_and_the_real_client_address(self):
        # A client that brings its own id and its own X-Forwarded-For, from
        # 127.0.0.2 over HTTP/1.1 and from 127.0.0.3 over HTTP/2.
        spoof = {"X-Request-Id": "client-chosen-id", "X-Forwarded-For": "10.9.9.9"}
        status, headers, _ = self.h.request("GET", "/api/config", headers=spoof, source="127.0.0.2")
        self.assertEqual(status, 200)
        status_h2, headers_h2, _ = curl_h2(self.h.https, "GET", "/api/config", spoof, source="127.0.0.3")
        self.assertEqual(status_h2, "HTTP/2 200")
        for rid, client, version in ((headers["x-request-id"], "127.0.0.2", "HTTP/1.1"),
                                     (headers_h2["x-request-id"], "127.0.0.3", "HTTP/2.0")):
            self.assertRegex(rid, r"^[0-9A-F]{30,40}$")
            line = wait_for(lambda: [l for l in self.h.log().splitlines() if " %s " % rid in l],
                            what="haproxy's line")[0]
            self.assertTrue(line.startswith(client + ":"), line)
            self.assertTrue(line.endswith(" GET /api/config " + version), line)
            # The same id, and the client's address, in exactly one parleyd log.
            lines = [l for p in self.cluster.instances for l in p.log().splitlines() if "id=%s " % rid in l]
            self.assertEqual(len(lines), 1, lines)
            self.assertIn("event=request id=%s client=%s method=GET path=/api/config status=200" % (rid, client),
                          lines[0])
        for log in self.logs():
            self.assertNotIn("client-chosen-id", log)
            self.assertNotIn("10.9.9.9", log)

    # --- 3. rooms --------------------------------------------------------

    def home_of(self, room):
        """Where HAProxy sends ROOM: a history request's server, from its
        log line."""
        _, headers, _ = self.h.request("GET", "/api/rooms/%s/messages" % room, headers=bearer(self.token))
        rid = headers["x-request-id"]
        line = wait_for(lambda: [l for l in self.h.log().splitlines() if " %s " % rid in l], what="log line")[0]
        return re.search(r" be_rooms/(\S+) ", line).group(1)

    def quiet_rooms_backend(self):
        """Waits until no connection is open in be_rooms (the bound on
        load is counted over those)."""
        def idle():
            for line in self.h.admin("show stat").splitlines():
                f = line.split(",")
                if f[:2] == ["be_rooms", "BACKEND"]:
                    return f[4] == "0"
        wait_for(idle, what="be_rooms without connections")

    def test_a_rooms_subscribers_share_one_instance_and_rooms_spread(self):
        self.token = self.cluster.session("sticky")
        self.quiet_rooms_backend()
        # With nothing open, where each of 30 rooms lives.
        homes = {}
        for n in range(30):
            homes["sticky-%d" % n] = self.home_of("sticky-%d" % n)
        spread = collections.Counter(homes.values())
        self.assertEqual(set(spread), set(NAMES))
        self.assertGreaterEqual(min(spread.values()), 5, spread)
        # Three rooms per instance, interleaved, so that the load stays
        # even and far below hash-balance-factor's bound (150 % of the
        # average) all along: nothing spills.
        rooms = [[r for r in sorted(homes) if homes[r] == name][:3] for name in NAMES]
        rooms = [r for trio in zip(*rooms) for r in trio]
        openers = [lambda r: WSClient.connect(self.h.http, "/ws/chat/" + r, headers=bearer(self.token)),
                   lambda r: SSEClient(self.h.http, "/api/rooms/%s/events" % r, bearer(self.token)),
                   lambda r: h2ws.connect(self.h.https, "/ws/chat/" + r, {"authorization": "Bearer " + self.token}),
                   lambda r: CurlSSEClient(self.h.https, "/api/rooms/%s/events" % r, bearer(self.token))]
        for opener in openers:
            for room in rooms:
                conn = self.open(opener(room))
                if hasattr(conn, "wait_ready"):
                    self.assertEqual(conn.wait_ready(), 200)
                else:
                    conn.recv_json(type="welcome")
        # History requests while all those are open still go home.
        for room in rooms:
            for _ in range(2):
                self.assertEqual(self.home_of(room), homes[room])
        # Each instance holds exactly its three rooms' streams ...
        for name, p in zip(NAMES, self.cluster.instances):
            self.assertEqual((metric(p, 'parley_connections{transport="ws"}'),
                              metric(p, 'parley_connections{transport="sse"}')), (6, 6), name)
            mine = set(re.findall(r"path=/(?:ws/chat|api/rooms)/(sticky-\d+)", p.log()))
            self.assertEqual(mine, {r for r in homes if homes[r] == name}, name)
        # ... and only its bus subscribes to them in Redis.
        for room in rooms:
            self.assertEqual(redis_call(self.cluster.redis, "PUBSUB", "NUMSUB", "parley:room:" + room)[1], 1, room)

    def test_a_hot_room_spills_over_and_still_reaches_everyone(self):
        # With few connections open the bound on load is tight: the 2nd and
        # later subscribers of a lone room go to other instances - by design.
        self.quiet_rooms_backend()
        token = self.cluster.session("hot")
        clients = [self.open(WSClient.connect(self.h.http, "/ws/chat/hot", headers=bearer(token)))
                   for _ in range(6)]
        for c in clients:
            c.recv_json(type="welcome")
        counts = [metric(p, 'parley_connections{transport="ws"}') for p in self.cluster.instances]
        self.assertGreater(sum(1 for n in counts if n), 1, counts)
        self.assertEqual(redis_call(self.cluster.redis, "PUBSUB", "NUMSUB", "parley:room:hot")[1],
                         sum(1 for n in counts if n))
        status, body = publish(self.h, token, "hot", "to everyone")
        for c in clients:
            self.assertEqual(c.recv_json(type="message")["id"], body["id"])


class H2Watcher:
    """A subscriber that must never lose its connection: a WebSocket over
    HTTP/2 through the TLS front ("h2ws"), or an event stream fetched by
    curl over HTTP/2 ("h2sse"), recording its room's message ids from a
    thread.  Reports like cluster_load.py's subscribers."""

    def __init__(self, cluster, kind, room, token, after=None):
        self.kind, self.room = kind, room
        self.ids = []
        self.violations = []
        self.answers = 0            # history answers, to probe the connection
        self._probe = threading.Event()
        self._stop = threading.Event()
        if kind == "h2ws":
            self.ws = h2ws.connect(cluster.haproxy.https, "/ws/chat/" + room, {"authorization": "Bearer " + token})
            self.start = self.ws.recv_json(type="welcome")["last_id"]
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        else:
            self.start = after
            self.sse = CurlSSEClient(cluster.haproxy.https, "/api/rooms/%s/events" % room,
                                     {"Authorization": "Bearer " + token, "Last-Event-ID": after})
            if self.sse.wait_ready() != 200:
                raise AssertionError("event stream refused: %s" % self.sse.status_line)

    def _read(self):
        try:
            while not self._stop.is_set():
                if self._probe.is_set():
                    self._probe.clear()
                    self.ws.send_json({"type": "history", "limit": 1})
                try:
                    doc = self.ws.recv_json(timeout=0.2)
                except socket.timeout:
                    continue
                if doc["type"] == "message":
                    self.ids.append(doc["id"])
                elif doc["type"] == "history":
                    self.answers += 1
        except Exception as e:     # the report says what ended it
            self.violations.append("connection lost: %r" % e)

    def probe(self):
        """Asks for one history message and waits for the answer: the
        connection works both ways."""
        before = self.answers
        self._probe.set()
        wait_for(lambda: self.answers > before or self.violations, timeout=5, what="history answer")

    def message_ids(self):
        if self.kind == "h2ws":
            return list(self.ids)
        return [e["id"] for e in self.sse.events if e.get("event") == "message"]

    def finish(self, last):
        """Waits until LAST has arrived (or 10 s), stops; the report."""
        try:
            wait_for(lambda: last in self.message_ids() or self.violations, timeout=10, interval=0.1,
                     what="%s to see %s" % (self.kind, last))
        except AssertionError as e:
            self.violations.append(str(e))
        if self.kind == "h2ws":
            self._stop.set()
            self.thread.join(5)
            self.ws.shutdown()
        else:
            if self.sse.closed:
                self.violations.append("event stream ended")
            self.sse.close()
        return {"kind": self.kind, "room": self.room, "start": self.start, "ids": self.message_ids(),
                "violations": self.violations, "opens": 1, "statuses": {}}


class UnderLoad(ClusterTest):
    """The accounting tests."""

    def test_haproxy_reload(self):
        load = Load(self, self.cluster, "reload", rooms=6, ws=10, sse=10)
        token = self.cluster.session("reload-h2")
        watchers = [H2Watcher(self.cluster, "h2ws", room, token) for room in load.rooms[:3]]
        watchers.append(H2Watcher(self.cluster, "h2sse", load.rooms[3], token, load.seed[load.rooms[3]]))
        load.run_for(1.5)
        before = self.cluster.haproxy.processes()
        for n in (1, 2):
            procs = self.cluster.haproxy.reload()
            self.assertEqual((procs["reloads"], procs["failed"]), (before["reloads"] + n, before["failed"]))
            load.run_for(1.5)
        # The old workers still carry the connections opened before.
        self.assertTrue(self.cluster.haproxy.processes()["old_workers"])
        for w in watchers[:3]:
            w.probe()
            # A reload sends GOAWAY to HTTP/2 clients; the open stream goes on.
            self.assertIsNotNone(w.ws.sock.goaway)
        figures = load.finish(watchers)
        # Not one WebSocket or event stream was cut by the reloads.
        self.assertEqual(figures["reconnects"], 0)

    def test_kill_9_of_a_whole_instance(self):
        load = Load(self, self.cluster, "kill", rooms=6, ws=10, sse=10)
        load.run_for(1.5)
        victim = self.cluster.instances[0]
        ws_before = metric(victim, 'parley_connections{transport="ws"}')
        pids = self.cluster.crash(0)
        load.run_for(1.5)
        figures = load.finish()
        print("  killed %s (pids %s) holding %d WebSockets" % (NAMES[0], pids, ws_before))
        self.assertGreater(ws_before, 0)
        self.assertGreaterEqual(figures["reconnects"], ws_before)

    def test_redis_restart(self):
        load = Load(self, self.cluster, "redis", rooms=6, ws=10, sse=10)
        load.run_for(1.5)
        redis = self.cluster.redis
        # A graceful restart: SHUTDOWN SAVE writes the data, start reads it.
        redis_cli(redis, "SHUTDOWN", "SAVE")
        redis.proc.wait(10)
        # Every instance answers /healthz 503 now: HAProxy takes all out.
        self.cluster.haproxy.wait_servers(down=NAMES)
        status, _, body = self.cluster.haproxy.request("GET", "/api/config")
        self.assertEqual((status, json.loads(body)["error"]["code"]), (503, "unavailable"))
        time.sleep(1)
        redis.start()
        self.cluster.all_up()
        load.run_for(1.5)
        figures = load.finish()
        self.assertGreater(figures["publish failures"], 0)

    def test_rolling_restart(self):
        load = Load(self, self.cluster, "rolling")
        load.run_for(2)
        stops = []
        for i in range(3):
            stops.append(self.cluster.restart(i))
            load.run_for(1)
        load.run_for(1)
        figures = load.finish()
        print("  stops took %s s" % ", ".join("%.1f" % s for s in stops))
        # The load really ran through the restarts.
        self.assertGreater(figures["reconnects"], 0)


if __name__ == "__main__":
    unittest.main()
