"""WebSocket chat at /ws/chat/{room}, on real parleyd processes and a real
redis-server: the handshake and its check order, the chat protocol (welcome,
messages, acks, direct messages, presence, typing, history, idempotency,
application errors, rate limits), RFC 6455 violations and their close
codes, keepalive, slow consumers and graceful shutdown."""

import base64
import http.client
import json
import os
import re
import signal
import socket
import struct
import threading
import time
import unittest

import harness
from harness import Env, SLOW, SSEClient, publish, redis_cli, session, wait_for
from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, ConnectionClosed,
                      WSClient, accept_for, build_request, handshake, new_key, raw_handshake, upgrade_headers)

JWT_SECRET = "ws-test-secret"
T = 10.0 * SLOW          # generous timeout for anything that should be quick
ID = re.compile(r"^\d+-\d+$")


def jwt(claims, secret=JWT_SECRET):
    return harness.jwt(claims, secret)


def id_key(stream_id):
    return tuple(map(int, stream_id.split("-")))


def metric(p, name):
    """The value of an unlabelled metric on parleyd P (0 when absent)."""
    _, _, body = p.request("GET", "/metrics")
    m = re.search(r"^%s (\d+(?:\.\d+)?)$" % re.escape(name), body.decode(), re.M)
    return float(m.group(1)) if m else 0.0


def ws_per_worker(p):
    """{worker pid: open WebSocket connections} from /metrics."""
    _, _, body = p.request("GET", "/metrics")
    out = {}
    for m in re.finditer(r'parley_worker_connections\{worker="\d+",pid="(\d+)",transport="ws"\} (\d+)',
                         body.decode()):
        out[int(m.group(1))] = int(m.group(2))
    return out


class WSCase(unittest.TestCase):
    """One parleyd (and redis) per class; names unique per test."""

    settings = {}
    _counter = 0

    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        try:
            cls.p = cls.env.parleyd(dict(cls.settings))
        except BaseException:
            cls.env.close()
            raise
        cls.tokens = {}

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        WSCase._counter += 1
        self.n = WSCase._counter
        self.clients = []
        self.addCleanup(self._close_clients)

    def _close_clients(self):
        for c in self.clients:
            c.shutdown()

    def name(self, base):
        """A user or room name unique to this test."""
        return "%s%d" % (base, self.n)

    def token(self, user, p=None):
        if user not in self.tokens:
            self.tokens[user] = session(p or self.p, user)
        return self.tokens[user]

    def connect(self, user, room, p=None, headers=None, welcome=True, **kw):
        """A WebSocket of USER in ROOM (token in the query); reads and checks
        the welcome unless WELCOME is false."""
        p = p or self.p
        c = WSClient.connect(p.port, "/ws/chat/%s?token=%s" % (room, self.token(user, p)),
                             headers=headers, timeout=T, **kw)
        self.clients.append(c)
        if welcome:
            c.welcome = c.recv_json()
            self.assertEqual(c.welcome["type"], "welcome", c.welcome)
            self.assertEqual((c.welcome["user"], c.welcome["room"]), (user, room))
        return c

    def assert_message(self, doc, mid, room, sender, content):
        self.assertEqual(doc, {"type": "message", "id": mid, "room": room, "from": sender,
                               "content": content, "ts": int(mid.split("-")[0])})

    def assert_error(self, doc, code):
        self.assertEqual(doc.get("type"), "error", doc)
        self.assertEqual(doc.get("code"), code, doc)
        self.assertIsInstance(doc.get("message"), str, doc)
        self.assertTrue(doc["message"], doc)
        self.assertEqual(set(doc), {"type", "code", "message"}, doc)

    def send_message(self, c, content, cmid):
        """Sends a chat message; returns (ack, own broadcast) in any order
        of arrival, both checked."""
        c.send_json({"type": "message", "content": content, "client_msg_id": cmid})
        got = {}
        while len(got) < 2:
            doc = c.recv_json()
            if doc.get("type") in ("presence", "typing", "direct"):
                c.skipped.append(doc)       # other people's live events
                continue
            self.assertIn(doc["type"], ("ack", "message"), doc)
            self.assertNotIn(doc["type"], got, doc)
            got[doc["type"]] = doc
        ack = got["ack"]
        self.assertEqual(set(ack), {"type", "client_msg_id", "id"}, ack)
        self.assertEqual(ack["client_msg_id"], cmid)
        self.assertRegex(ack["id"], ID)
        self.assertEqual(got["message"]["id"], ack["id"])
        return ack, got["message"]

    def next_of(self, c, kind, timeout=None):
        """The next message of type KIND; others are kept in c.skipped."""
        return c.recv_json(timeout, type=kind)

    def barrier(self, sender, receivers, room):
        """Sends a marker message from SENDER and reads every RECEIVER up to
        it; returns {receiver: [messages before the marker]}."""
        marker = "barrier-%d-%f" % (self.n, time.monotonic())
        sender.send_json({"type": "message", "content": marker, "client_msg_id": marker})
        out = {}
        for r in receivers:
            got = r.recv_until(lambda d: d.get("type") == "message" and d.get("content") == marker)
            out[r] = got[:-1]
        return out


# ---------------------------------------------------------------------------
# The handshake
# ---------------------------------------------------------------------------

class Handshake(WSCase):
    settings = {"workers": "2", "allowed_origins": "http://good.example, https://also.example:8443",
                "jwt_secret": JWT_SECRET}

    def refused(self, status, path=None, headers=None, method="GET"):
        """Makes an upgrade request (HEADERS change a valid one; None drops a
        header) and checks the error response; returns it."""
        resp = handshake(self.p.port, path or "/ws/chat/lobby", headers, method, timeout=T)
        self.assertEqual(resp.status, status, resp)
        self.assertIn("x-request-id", resp.headers, resp)
        self.assertTrue(resp.headers["content-type"].startswith("application/json"), resp)
        body = resp.json()
        self.assertEqual(set(body), {"error"}, body)
        self.assertEqual(set(body["error"]), {"code", "message"}, body)
        self.assertIsInstance(body["error"]["message"], str)
        self.assertNotIn("sec-websocket-accept", resp.headers)
        return resp

    def good_token(self):
        return self.token("hsuser")

    def test_not_get_is_405_with_allow(self):
        for method in ("POST", "PUT", "DELETE"):
            resp = self.refused(405, headers={"Content-Length": "0"}, method=method)
            self.assertEqual(resp.json()["error"]["code"], "method_not_allowed")
            self.assertIn("GET", [m.strip() for m in resp.headers["allow"].split(",")], resp)
        # 405 comes before everything else: no upgrade, no key, no token.
        resp = self.refused(405, method="POST", headers={"Upgrade": None, "Connection": None,
                                                         "Sec-WebSocket-Key": None,
                                                         "Sec-WebSocket-Version": None,
                                                         "Content-Length": "0"})
        self.assertIn("allow", resp.headers)
        resp = self.refused(405, method="POST", headers={"Origin": "http://evil.example", "Content-Length": "0"})
        self.assertEqual(resp.json()["error"]["code"], "method_not_allowed")

    def test_no_upgrade_is_426(self):
        tok = "?token=" + self.good_token()
        for h in ({"Upgrade": None}, {"Upgrade": "h2c"}, {"Upgrade": None, "Connection": None}):
            resp = self.refused(426, "/ws/chat/lobby" + tok, headers=h)
            self.assertEqual(resp.headers.get("upgrade", "").lower(), "websocket", resp)
            self.assertEqual(resp.json()["error"]["code"], "upgrade_required")
        # A plain browser GET without a token: 426 comes before 401.
        resp = self.refused(426, headers={"Upgrade": None, "Connection": None,
                                          "Sec-WebSocket-Key": None, "Sec-WebSocket-Version": None})
        self.assertEqual(resp.headers.get("upgrade", "").lower(), "websocket", resp)
        self.assertNotIn("www-authenticate", resp.headers)
        # And before the origin check.
        resp = self.refused(426, headers={"Upgrade": None, "Origin": "http://evil.example"})
        self.assertEqual(resp.headers.get("upgrade", "").lower(), "websocket", resp)

    def test_bad_version_is_426(self):
        tok = "?token=" + self.good_token()
        for version in (None, "8", "12", "14", "", "13x"):
            resp = self.refused(426, "/ws/chat/lobby" + tok, headers={"Sec-WebSocket-Version": version})
            self.assertEqual(resp.headers.get("sec-websocket-version"), "13", resp)
        # Before the key, the origin and the token.
        resp = self.refused(426, headers={"Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "bad",
                                          "Origin": "http://evil.example"})
        self.assertEqual(resp.headers.get("sec-websocket-version"), "13", resp)

    def test_bad_key_is_400(self):
        tok = "?token=" + self.good_token()
        for key in (None, "", "short", base64.b64encode(b"x" * 15).decode(),
                    base64.b64encode(b"x" * 17).decode(), "!" * 22 + "==", "A" * 24):
            resp = self.refused(400, "/ws/chat/lobby" + tok, headers={"Sec-WebSocket-Key": key})
            self.assertEqual(resp.json()["error"]["code"], "bad_request", (key, resp))
        # Before the origin and the token.
        resp = self.refused(400, headers={"Sec-WebSocket-Key": "short", "Origin": "http://evil.example"})
        self.assertEqual(resp.json()["error"]["code"], "bad_request")
        self.assertNotIn("www-authenticate", resp.headers)

    def test_bad_origin_is_403(self):
        tok = "?token=" + self.good_token()
        for origin in ("http://evil.example", "http://good.example.evil", "https://good.example",
                       "http://good.example:80", "null", "https://also.example"):
            resp = self.refused(403, "/ws/chat/lobby" + tok, headers={"Origin": origin})
            self.assertEqual(resp.json()["error"]["code"], "forbidden", (origin, resp))
        # Before the token.
        resp = self.refused(403, headers={"Origin": "http://evil.example"})
        self.assertNotIn("www-authenticate", resp.headers)
        # Listed origins and no Origin at all are allowed.
        for origin in ("http://good.example", "https://also.example:8443", None):
            c = self.connect("hsuser", "lobby", headers={"Origin": origin} if origin else None)
            c.shutdown()

    def test_missing_or_invalid_token_is_401(self):
        for path, h in (("/ws/chat/lobby", None),
                        ("/ws/chat/lobby?token=" + "A" * 43, None),
                        ("/ws/chat/lobby?token=", None),
                        ("/ws/chat/lobby", {"Authorization": "Bearer " + "A" * 43}),
                        ("/ws/chat/lobby", {"Authorization": "Basic eDp5"}),
                        ("/ws/chat/lobby", {"Cookie": "parley_token=" + "B" * 43})):
            resp = self.refused(401, path, headers=h)
            self.assertEqual(resp.headers.get("www-authenticate"), "Bearer", resp)
            self.assertEqual(resp.json()["error"]["code"], "unauthorized")

    def test_token_sources(self):
        tok = self.good_token()
        room = self.name("tok")
        for path, h in (("/ws/chat/%s?token=%s" % (room, tok), None),
                        ("/ws/chat/" + room, {"Authorization": "Bearer " + tok}),
                        ("/ws/chat/" + room, {"Cookie": "theme=dark; parley_token=" + tok})):
            c = WSClient.connect(self.p.port, path, headers=h, timeout=T)
            self.clients.append(c)
            w = c.recv_json()
            self.assertEqual((w["type"], w["user"], w["room"]), ("welcome", "hsuser", room))

    def test_jwt(self):
        now = int(time.time())
        room = self.name("jwt")
        c = WSClient.connect(self.p.port, "/ws/chat/" + room, timeout=T,
                             headers={"Authorization": "Bearer " + jwt({"sub": "jwtuser", "exp": now + 60})})
        self.clients.append(c)
        self.assertEqual(c.recv_json()["user"], "jwtuser")
        for bad in (jwt({"sub": "jwtuser", "exp": now - 1}), jwt({"sub": "jwtuser", "exp": now + 60}, "wrong")):
            resp = self.refused(401, "/ws/chat/%s?token=%s" % (room, bad))
            self.assertEqual(resp.headers.get("www-authenticate"), "Bearer")
        # A critical extension parley does not know (RFC 7515 4.1.11).
        crit = harness.jwt({"sub": "jwtuser", "exp": now + 60}, JWT_SECRET,
                           header={"alg": "HS256", "typ": "JWT", "crit": ["exp"]})
        resp = self.refused(401, "/ws/chat/%s?token=%s" % (room, crit))
        self.assertEqual(resp.json()["error"]["message"], "invalid token: unsupported crit header")

    def test_header_variants_accepted(self):
        room = self.name("hv")
        path = "/ws/chat/%s?token=%s" % (room, self.good_token())
        key = new_key()
        for h in ([("Upgrade", "WebSocket"), ("Connection", "keep-alive, Upgrade")],
                  [("upgrade", "websocket"), ("connection", "Upgrade, keep-alive")],
                  [("UPGRADE", "WEBSOCKET"), ("Connection", "upgrade")]):
            req = build_request(path, h + [("sec-websocket-key", key), ("SEC-WEBSOCKET-VERSION", "13")])
            resp, sock, rest = raw_handshake(self.p.port, req, T)
            self.assertEqual(resp.status, 101, (h, resp))
            c = WSClient(sock, rest, resp, T)
            self.clients.append(c)
            self.assertEqual(c.recv_json()["type"], "welcome")
            self.assertEqual(resp.headers["sec-websocket-accept"], accept_for(key))

    def test_room_names(self):
        tok = "?token=" + self.good_token()
        for room in ("a%20b", "..", ".", "x" * 65, "%2e%2e", "a%zz", "caf%C3%A9"):
            resp = self.refused(400, "/ws/chat/" + room + tok)
            self.assertEqual(resp.json()["error"]["code"], "bad_request", (room, resp))
        resp = self.refused(404, "/ws/chat/" + tok)
        self.assertEqual(resp.json()["error"]["code"], "not_found")
        # Percent-encoded valid names are decoded.
        c = WSClient.connect(self.p.port, "/ws/chat/%61b" + tok, timeout=T)
        self.clients.append(c)
        self.assertEqual(c.recv_json()["room"], "ab")


class Origins(WSCase):
    settings = {"workers": "1", "allowed_origins": "*"}

    def test_any_origin_with_star(self):
        for origin in ("http://evil.example", "null", None):
            c = self.connect(self.name("o"), self.name("or"), headers={"Origin": origin} if origin else None)
            c.shutdown()


# ---------------------------------------------------------------------------
# The chat protocol on one instance
# ---------------------------------------------------------------------------

class Chat(WSCase):
    settings = {"workers": "2", "max_content": "100", "ws_max_message": "1024"}

    def test_same_origin_only_without_allowed_origins(self):
        user, room = self.name("alice"), self.name("o")
        host = "127.0.0.1:%d" % self.p.port
        for origin in ("http://evil.example", "null", "http://127.0.0.1:%d.evil" % self.p.port,
                       "https://127.0.0.1:%d" % (self.p.port + 1)):
            resp = handshake(self.p.port, "/ws/chat/%s?token=%s" % (room, self.token(user)),
                                      headers={"Origin": origin, "Host": host})
            self.assertEqual(resp.status, 403, origin)
        # The server's own pages (the Host the browser asked for), and clients
        # that are not browser pages, are let in.
        for origin in ("http://127.0.0.1:%d" % self.p.port, "HTTPS://127.0.0.1:%d" % self.p.port, None):
            c = self.connect(user, room, headers={"Origin": origin, "Host": host} if origin else None)
            c.close()
            self.assertEqual(c.expect_close(), (1000, ""))

    def test_welcome(self):
        room, alice, bob = self.name("w"), self.name("alice"), self.name("bob")
        a = self.connect(alice, room)
        self.assertEqual(a.welcome, {"type": "welcome", "user": alice, "room": room,
                                     "members": [alice], "last_id": None})
        ids = [publish(self.p, self.token(alice), room, "m%d" % i)[1]["id"] for i in range(3)]
        b = self.connect(bob, room)
        self.assertEqual(set(b.welcome), {"type", "user", "room", "members", "last_id"})
        self.assertEqual(sorted(b.welcome["members"]), sorted([alice, bob]))
        self.assertEqual(len(b.welcome["members"]), 2)
        self.assertEqual(b.welcome["last_id"], ids[-1])
        # Nothing from before last_id is replayed live.
        w = self.connect(self.name("carol"), room)
        self.barrier(a, [b, w], room)
        for doc in b.skipped + w.skipped:
            self.assertNotIn(doc.get("id"), ids)

    def test_two_workers_same_message_and_ack(self):
        room = self.name("two")
        users = [self.name("u%d" % i) for i in range(2)]
        conns = []
        for i in range(20):
            conns.append(self.connect(users[i % 2], room))
            per = ws_per_worker(self.p)
            if len(conns) >= 4 and len(per) == 2 and all(per.values()):
                break
        per = ws_per_worker(self.p)
        self.assertEqual(len(per), 2, per)
        self.assertTrue(all(per.values()), per)
        ack, own = self.send_message(conns[0], "hello all", "c1")
        self.assert_message(own, ack["id"], room, users[0], "hello all")
        for c in conns[1:]:
            doc = self.next_of(c, "message")
            self.assert_message(doc, ack["id"], room, users[0], "hello all")
        # And the other way round, ids increasing.
        ack2, _ = self.send_message(conns[1], "reply", "c2")
        self.assertGreater(id_key(ack2["id"]), id_key(ack["id"]))
        for c in conns[:1] + conns[2:]:
            self.assert_message(self.next_of(c, "message"), ack2["id"], room, users[1], "reply")

    def test_http_publish_reaches_ws_and_sse_and_back(self):
        room, alice, bob = self.name("mix"), self.name("alice"), self.name("bob")
        a = self.connect(alice, room)
        sse = SSEClient(self.p.port, "/api/rooms/%s/events?token=%s" % (room, self.token(bob)))
        self.addCleanup(sse.close)
        self.assertEqual(sse.wait_ready(), 200)
        # The SSE stream is live once alice (connected before) sees bob's join.
        self.assertEqual(self.next_of(a, "presence"),
                         {"type": "presence", "event": "join", "user": bob, "room": room})
        status, body = publish(self.p, self.token(bob), room, "over http")
        self.assertEqual(status, 201, body)
        self.assert_message(self.next_of(a, "message"), body["id"], room, bob, "over http")
        ev = sse.wait_events(1, kind="message")[0]
        self.assertEqual(ev["id"], body["id"])
        self.assert_message(ev["json"], body["id"], room, bob, "over http")
        ack, _ = self.send_message(a, "over ws", "w1")
        ev = sse.wait_events(2, kind="message")[1]
        self.assertEqual(ev["id"], ack["id"])
        self.assert_message(ev["json"], ack["id"], room, alice, "over ws")
        # And HTTP history holds it too.
        _, _, hist = self.p.request("GET", "/api/rooms/%s/messages?token=%s" % (room, self.token(bob)))
        self.assertEqual([m["id"] for m in json.loads(hist)["messages"]], [body["id"], ack["id"]])

    def test_direct_over_sse_is_no_resume_point(self):
        # A direct message is live only: on an event stream it carries no
        # "id:" line, so the browser's Last-Event-ID stays on the last stored
        # message and a reconnect resumes instead of being reset.
        room, alice, bob = self.name("dsse"), self.name("alice"), self.name("bob")
        a = self.connect(alice, room)
        sse = SSEClient(self.p.port, "/api/rooms/%s/events?token=%s" % (room, self.token(bob)))
        self.addCleanup(sse.close)
        self.assertEqual(sse.wait_ready(), 200)
        self.next_of(a, "presence")
        a.send_json({"type": "direct", "to": bob, "content": "psst"})
        direct = sse.wait_events(1, kind="direct")[0]
        self.assertNotIn("id", direct)
        self.assertTrue(direct["json"]["id"])
        self.send_message(a, "after the direct", "dsse-1")
        msg = sse.wait_events(1, kind="message")[0]
        self.assertEqual(msg["id"], msg["json"]["id"])

    def test_direct_message(self):
        r1, r2 = self.name("d1"), self.name("d2")
        alice, bob, carol = self.name("alice"), self.name("bob"), self.name("carol")
        a = self.connect(alice, r1)
        b1 = self.connect(bob, r1)
        b2 = self.connect(bob, r2)
        c = self.connect(carol, r1)
        a.send_json({"type": "direct", "to": bob, "content": "psst"})
        d1 = self.next_of(b1, "direct")
        d2 = self.next_of(b2, "direct")
        self.assertEqual(set(d1), {"type", "id", "from", "to", "content", "ts"})
        self.assertEqual(d1, d2)
        self.assertEqual((d1["from"], d1["to"], d1["content"]), (alice, bob, "psst"))
        self.assertIsInstance(d1["id"], str)
        self.assertTrue(d1["id"])
        self.assertIsInstance(d1["ts"], int)
        self.assertLess(abs(d1["ts"] - time.time() * 1000), 60000)
        # Nobody else gets it: not carol, not alice (the sender).
        time.sleep(0.2)
        seen = self.barrier(a, [c, a], r1)
        for who, docs in seen.items():
            self.assertFalse([d for d in docs if d.get("type") == "direct"], docs)
        # Not a stored message.
        self.assertEqual(redis_cli(self.env.redis, "XLEN", "parley:room:%s:log" % r1), "1")

    def test_direct_to_offline_user(self):
        room, alice = self.name("off"), self.name("alice")
        a = self.connect(alice, room)
        a.send_json({"type": "direct", "to": self.name("nobody"), "content": "hello?"})
        self.assert_error(a.recv_json(), "user_offline")
        # Someone who was connected and left is offline again.
        bob = self.name("bob")
        b = self.connect(bob, self.name("elsewhere"))
        b.close()
        b.expect_close()
        wait_for(lambda: redis_cli(self.env.redis, "HEXISTS", "parley:room:%s:members" % self.name("elsewhere"),
                                   bob) == "0", what="bob gone")
        a.send_json({"type": "direct", "to": bob, "content": "still there?"})
        try:
            doc = self.next_of(a, "error", timeout=3 * SLOW)
        except socket.timeout:
            self.fail("no error user_offline for a direct to a user whose only connection closed "
                      "(got %r)" % a.skipped)
        self.assert_error(doc, "user_offline")
        # The connection stays open.
        self.send_message(a, "still open", "s1")

    def test_presence(self):
        room = self.name("pres")
        watcher, alice = self.name("watcher"), self.name("alice")
        w = self.connect(watcher, room)
        t1 = self.connect(alice, room)
        self.assertEqual(self.next_of(w, "presence"),
                         {"type": "presence", "event": "join", "user": alice, "room": room})
        self.assertEqual(sorted(t1.welcome["members"]), sorted([watcher, alice]))
        t2 = self.connect(alice, room)          # a second tab: no second join
        self.assertEqual(sorted(t2.welcome["members"]), sorted([watcher, alice]))
        time.sleep(0.3)
        seen = self.barrier(w, [w, t1, t2], room)
        self.assertEqual([d for d in seen[w] if d.get("type") == "presence"], [])
        # A user does not get its own join.  (The watcher's own join, from
        # before alice came, may still be in flight to her; not asserted.)
        for t in (t1, t2):
            self.assertEqual([d for d in seen[t] + t.skipped
                              if d.get("type") == "presence" and d.get("user") == alice], [])
        t1.close()
        self.assertEqual(t1.expect_close(), (1000, ""))
        time.sleep(0.3)
        seen = self.barrier(w, [w], room)
        self.assertEqual([d for d in seen[w] if d.get("type") == "presence"], [])
        t2.shutdown()                           # the last one goes, even without a close frame
        self.assertEqual(self.next_of(w, "presence"),
                         {"type": "presence", "event": "leave", "user": alice, "room": room})
        self.assertEqual(redis_cli(self.env.redis, "HEXISTS", "parley:room:%s:members" % room, alice), "0")

    def test_typing(self):
        room, alice, bob = self.name("typ"), self.name("alice"), self.name("bob")
        a = self.connect(alice, room)
        b = self.connect(bob, room)
        a.send_json({"type": "typing"})
        self.assertEqual(self.next_of(b, "typing"), {"type": "typing", "user": alice, "room": room})
        # Live only: nothing stored.
        self.assertEqual(redis_cli(self.env.redis, "EXISTS", "parley:room:%s:log" % room), "0")

    def test_history(self):
        room, alice = self.name("hist"), self.name("alice")
        ids = [publish(self.p, self.token(alice), room, "h%d" % i)[1]["id"] for i in range(10)]
        a = self.connect(alice, room)
        self.assertEqual(a.welcome["last_id"], ids[-1])
        a.send_json({"type": "history", "before": ids[6], "limit": 3})
        doc = a.recv_json()
        self.assertEqual(set(doc), {"type", "messages"})
        self.assertEqual(doc["type"], "history")
        self.assertEqual([m["id"] for m in doc["messages"]], ids[3:6])
        for m, i in zip(doc["messages"], range(3, 6)):
            self.assert_message(m, ids[i], room, alice, "h%d" % i)
        a.send_json({"type": "history", "before": ids[2], "limit": 50})
        self.assertEqual([m["id"] for m in a.recv_json()["messages"]], ids[:2])
        a.send_json({"type": "history", "before": ids[0], "limit": 50})
        self.assertEqual(a.recv_json(), {"type": "history", "messages": []})
        # Without "before": the newest, oldest first.
        a.send_json({"type": "history", "limit": 4})
        self.assertEqual([m["id"] for m in a.recv_json()["messages"]], ids[-4:])

    def test_idempotent_client_msg_id(self):
        room, alice, bob = self.name("idem"), self.name("alice"), self.name("bob")
        a = self.connect(alice, room)
        b = self.connect(bob, room)
        ack1, _ = self.send_message(a, "once", "dup-1")
        a.send_json({"type": "message", "content": "once again", "client_msg_id": "dup-1"})
        ack2 = self.next_of(a, "ack")
        self.assertEqual(ack2, {"type": "ack", "client_msg_id": "dup-1", "id": ack1["id"]})
        self.assertEqual(redis_cli(self.env.redis, "XLEN", "parley:room:%s:log" % room), "1")
        # Broadcast once only.
        seen = self.barrier(a, [b], room)
        self.assertEqual([d["id"] for d in seen[b] if d.get("type") == "message"], [ack1["id"]])
        # The same id over HTTP from the same user is the same message too.
        status, body = publish(self.p, self.token(alice), room, "via http", cmid="dup-1")
        self.assertEqual((status, body["id"]), (201, ack1["id"]))

    def test_application_errors_keep_the_connection(self):
        room, alice = self.name("err"), self.name("alice")
        a = self.connect(alice, room)
        cases = [
            ("hello", "invalid_json"),
            ('{"type":"message"', "invalid_json"),
            ('{"type":"message","content":"x"} trailing', "invalid_json"),
            ("[1,2]", "invalid_json"),
            ('{"type":"dance"}', "bad_request"),
            ("{}", "bad_request"),
            ('{"type":5}', "bad_request"),
            (json.dumps({"type": "message", "content": "x" * 101}), "too_large"),
            (json.dumps({"type": "message", "content": "\u00e9" * 51}), "too_large"),     # 102 bytes
            (json.dumps({"type": "message", "content": 5}), "bad_request"),
            (json.dumps({"type": "message", "content": ""}), "bad_request"),
            (json.dumps({"type": "message"}), "bad_request"),
            (json.dumps({"type": "message", "content": "x", "client_msg_id": 7}), "bad_request"),
            (json.dumps({"type": "message", "content": "cut\u0000here"}), "bad_request"),
            (json.dumps({"type": "direct", "to": alice + "\u0000x", "content": "x"}), "bad_request"),
            (json.dumps({"type": "direct", "to": 5, "content": "x"}), "bad_request"),
            (json.dumps({"type": "direct", "to": "bad name", "content": "x"}), "bad_request"),
            (json.dumps({"type": "direct", "to": alice, "content": ["x"]}), "bad_request"),
            (json.dumps({"type": "direct", "to": alice, "content": "x" * 101}), "too_large"),
            (json.dumps({"type": "history", "before": "junk"}), "bad_request"),
            (json.dumps({"type": "history", "limit": "x"}), "bad_request"),
            (json.dumps({"type": "history", "limit": 0}), "bad_request"),
        ]
        for text, code in cases:
            a.send_text(text)
            doc = a.recv_json()
            self.assertEqual((doc.get("type"), doc.get("code")), ("error", code), (text, doc))
            self.assert_error(doc, code)
        # Exactly max_content bytes is fine, and the connection is still open.
        ack, own = self.send_message(a, "y" * 100, "fine")
        self.assertEqual(own["content"], "y" * 100)
        self.assertEqual(redis_cli(self.env.redis, "XLEN", "parley:room:%s:log" % room), "1")

    def test_json_outside_rfc_8259_is_invalid_json(self):
        # What json-c alone would take: repeated names (it keeps the last),
        # NaN and Infinity, raw control characters, a lone surrogate.
        room, alice = self.name("strict"), self.name("alice")
        a = self.connect(alice, room)
        cases = [
            (b'{"type":"message","content":"a","content":"b"}', "duplicate member name at offset 32"),
            (b'{"type":"message","content":"a","\\u0063ontent":"b"}', "duplicate member name"),
            (b'{"type":"typing","type":"message","content":"a"}', "duplicate member name"),
            (b'{"type":"history","limit":NaN}', "NaN and Infinity"),
            (b'{"type":"history","limit":Infinity}', "NaN and Infinity"),
            (b'{"type":"history","limit":-Infinity}', "NaN and Infinity"),
            (b'{"type":"message","content":"line\nbreak"}', "unescaped control character in a string at offset 33"),
            (b'{"type":"message","content":"\x1f"}', "unescaped control character"),
            (b'{"type":"message","content":"\\ud800"}', "unpaired surrogate"),
            (b'{"type":"message","content":"x","deep":' + b"[" * 40 + b"]" * 40 + b"}", "nested more than"),
            (b'{"type":"message","content":"x",}', "unexpected character"),
            (b'{"type":"message","content":01}', "malformed number"),
            (b'{"type":"message"', "the text ends inside the value"),
        ]
        for text, words in cases:
            a.send_text(text)
            doc = a.recv_json()
            self.assert_error(doc, "invalid_json")
            self.assertTrue(doc["message"].startswith("the message is not valid JSON: "), (text, doc))
            self.assertIn(words, doc["message"], text)
        for text, message in ((b"", "the message is empty; send a JSON object"),
                              (b" \r\n", "the message is empty; send a JSON object"),
                              (b"[1,2]", "the message must be a JSON object, not an array")):
            a.send_text(text)
            doc = a.recv_json()
            self.assert_error(doc, "invalid_json")
            self.assertEqual(doc["message"], message)
        # Nothing of it was stored, and the connection is still open.
        self.assertEqual(redis_cli(self.env.redis, "XLEN", "parley:room:%s:log" % room), "0")
        self.send_message(a, "still here", "strict-1")

    def test_ask_streams_to_the_room_and_is_stored(self):
        # The builtin agent: the answer streams to everyone in the room as
        # ai_chunk events, then is stored as the agent's message and named
        # by ai_done.
        room, alice, bob = self.name("ask"), self.name("alice"), self.name("bob")
        a = self.connect(alice, room)
        b = self.connect(bob, room)
        self.next_of(a, "presence")
        a.send_json({"type": "ask", "content": "echo this please"})
        for c in (a, b):
            chunks = []
            while True:
                doc = c.recv_json(T)
                if doc["type"] == "ai_done":
                    break
                if doc["type"] == "ai_chunk":
                    chunks.append(doc)
            self.assertGreater(len(chunks), 2)                      # word by word
            self.assertEqual(len({d["request_id"] for d in chunks}), 1)
            self.assertEqual(doc["request_id"], chunks[0]["request_id"])
            self.assertEqual("".join(d["content"] for d in chunks), "You said: echo this please")
        stored = json.loads(self.p.request("GET", "/api/rooms/%s/messages?token=%s" % (room, self.token(bob)))[2])
        last = stored["messages"][-1]
        self.assertEqual((last["id"], last["from"], last["content"]),
                         (doc["id"], "agent", "You said: echo this please"))
        self.send_message(a, "still open", "after-ask")


class CrossInstance(WSCase):
    """Two instances sharing one Redis."""

    settings = {"workers": "2"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.q = cls.env.parleyd(dict(cls.settings))
        except BaseException:
            cls.env.close()
            raise

    def test_room_message_across_instances(self):
        room, alice, bob = self.name("x"), self.name("alice"), self.name("bob")
        a = self.connect(alice, room, p=self.p)
        b = self.connect(bob, room, p=self.q)
        self.assertEqual(self.next_of(a, "presence"),
                         {"type": "presence", "event": "join", "user": bob, "room": room})
        self.assertEqual(sorted(b.welcome["members"]), sorted([alice, bob]))
        ack, own = self.send_message(a, "from p", "x1")
        self.assert_message(self.next_of(b, "message"), ack["id"], room, alice, "from p")
        ack2, _ = self.send_message(b, "from q", "x2")
        self.assert_message(self.next_of(a, "message"), ack2["id"], room, bob, "from q")
        # Over HTTP on one, to WS on both.
        status, body = publish(self.q, self.token(bob), room, "http on q")
        self.assertEqual(status, 201)
        for c in (a, b):
            self.assert_message(self.next_of(c, "message"), body["id"], room, bob, "http on q")

    def test_direct_across_instances_any_room(self):
        alice, bob, carol = self.name("alice"), self.name("bob"), self.name("carol")
        r1, r2, r3 = self.name("y"), self.name("z"), self.name("v")
        a = self.connect(alice, r1, p=self.p)
        b_p = self.connect(bob, r2, p=self.p)
        b_q = self.connect(bob, r3, p=self.q)
        c_q = self.connect(carol, r3, p=self.q)
        c_p = self.connect(carol, r1, p=self.p)
        a.send_json({"type": "direct", "to": bob, "content": "secret"})
        got = [self.next_of(b, "direct") for b in (b_p, b_q)]
        self.assertEqual(got[0], got[1])
        self.assertEqual({k: got[0][k] for k in ("type", "from", "to", "content")},
                         {"type": "direct", "from": alice, "to": bob, "content": "secret"})
        # Bob only on the other instance still counts as online.
        b_p.close()
        b_p.expect_close()
        a.send_json({"type": "direct", "to": bob, "content": "again"})
        self.assertEqual(self.next_of(b_q, "direct")["content"], "again")
        time.sleep(0.2)
        seen = self.barrier(a, [c_p, a], r1)
        seen.update(self.barrier(c_q, [c_q], r3))
        for docs in seen.values():
            self.assertFalse([d for d in docs if d.get("type") in ("direct", "error")], docs)

    def test_presence_across_instances(self):
        room, watcher, alice = self.name("pa"), self.name("watcher"), self.name("alice")
        w = self.connect(watcher, room, p=self.q)
        t1 = self.connect(alice, room, p=self.p)
        self.assertEqual(self.next_of(w, "presence")["event"], "join")
        t2 = self.connect(alice, room, p=self.q)
        t1.close()
        t1.expect_close()
        time.sleep(0.3)
        seen = self.barrier(w, [w], room)
        self.assertEqual([d for d in seen[w] if d.get("type") == "presence"], [])
        t2.close()
        t2.expect_close()
        self.assertEqual(self.next_of(w, "presence"),
                         {"type": "presence", "event": "leave", "user": alice, "room": room})


# ---------------------------------------------------------------------------
# Rate limit
# ---------------------------------------------------------------------------

class RateLimit(WSCase):
    settings = {"workers": "1", "rate_limit": "5", "rate_burst": "5"}

    def test_burst_is_limited_and_connection_stays(self):
        room, alice = self.name("rl"), self.name("alice")
        a = self.connect(alice, room)
        t0 = time.monotonic()
        a.send_raw(b"".join(WSClient.encode_frame(OP_TEXT, json.dumps(
            {"type": "message", "content": "m%d" % i, "client_msg_id": "b%d" % i}).encode())
            for i in range(30)))
        docs = a.drain(quiet=1.5)
        elapsed = time.monotonic() - t0
        acks = [d for d in docs if d["type"] == "ack"]
        errors = [d for d in docs if d["type"] == "error"]
        for e in errors:
            self.assert_error(e, "rate_limited")
        # The burst, plus what refilled while the 30 were processed.
        self.assertGreaterEqual(len(acks), 5, docs)
        self.assertLessEqual(len(acks), 7, docs)
        self.assertEqual([d["client_msg_id"] for d in acks], ["b%d" % i for i in range(len(acks))])
        # At most one error per second.
        self.assertGreaterEqual(len(errors), 1, docs)
        self.assertLessEqual(len(errors), 1 + int(elapsed), docs)
        self.assertEqual(redis_cli(self.env.redis, "XLEN", "parley:room:%s:log" % room), str(len(acks)))
        # Still open; tokens come back at rate_limit per second.
        time.sleep(0.5)
        self.send_message(a, "later", "later-1")

    def test_rate_limited_errors_at_most_one_per_second(self):
        room, alice = self.name("rl"), self.name("alice")
        a = self.connect(alice, room)
        errors = []
        start = time.monotonic()
        i = 0
        # 40 messages/s for 2.6 s, far over 5/s.
        while time.monotonic() - start < 2.6:
            a.send_json({"type": "message", "content": "f%d" % i, "client_msg_id": "f%d" % i})
            i += 1
            try:
                while True:
                    d = a.recv_json(0.025)
                    if d["type"] == "error":
                        self.assert_error(d, "rate_limited")
                        errors.append(time.monotonic())
            except socket.timeout:
                pass
        for d in a.drain(quiet=1.0):
            if d["type"] == "error":
                errors.append(time.monotonic())
        self.assertGreaterEqual(len(errors), 2, errors)
        self.assertLessEqual(len(errors), 4, errors)
        gaps = [b - a_ for a_, b in zip(errors, errors[1:])]
        # Client-side arrival times jitter; the server spaces them >= 1 s.
        self.assertTrue(all(g > 0.8 for g in gaps), gaps)
        # Still open once tokens have come back (rate_limit per second).
        time.sleep(0.5)
        self.send_message(a, "still open", "open-1")

    def test_flood_closed_with_1008(self):
        # The rule needs ten seconds of flooding: the suite's longest test.
        room, alice = self.name("flood"), self.name("alice")
        a = self.connect(alice, room)
        frame = WSClient.encode_frame(OP_TEXT, b'{"type":"typing"}')
        start = time.monotonic()
        # 100 messages/s (20x the limit) until the server closes.
        try:
            while time.monotonic() - start < 15 * SLOW:
                a.send_raw(frame * 10)
                time.sleep(0.1)
                try:
                    while True:
                        a.recv_frame(0.001)
                        if a.close_received:
                            break
                except socket.timeout:
                    pass
                if a.close_received:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.assertIsNotNone(a.close_received, "not closed after %.1fs" % (time.monotonic() - start))
        self.assertEqual(a.close_received[0], 1008)
        self.assertGreaterEqual(time.monotonic() - start, 9.5)


# ---------------------------------------------------------------------------
# RFC 6455
# ---------------------------------------------------------------------------

class Protocol(WSCase):
    settings = {"workers": "2", "ws_max_message": "1024", "max_content": "100"}

    def open(self):
        return self.connect(self.name("alice"), self.name("rfc"))

    def assert_closes(self, code, *frames):
        """Sends FRAMES (bytes) on a new connection; the server must close
        with CODE and then end the TCP connection."""
        c = self.open()
        try:
            c.send_raw(b"".join(frames))
        except (BrokenPipeError, ConnectionResetError):
            pass
        got = c.expect_close()
        self.assertEqual(got[0], code, (got, frames))
        return c

    F = staticmethod(WSClient.encode_frame)

    def test_unmasked_frame_1002(self):
        self.assert_closes(1002, self.F(OP_TEXT, b'{"type":"typing"}', mask=False))
        self.assert_closes(1002, self.F(OP_PING, b"x", mask=False))

    def test_rsv_bits_1002(self):
        for rsv in (4, 2, 1):
            self.assert_closes(1002, self.F(OP_TEXT, b'{"type":"typing"}', rsv=rsv))
        self.assert_closes(1002, self.F(OP_PING, b"", rsv=4))

    def test_reserved_opcodes_1002(self):
        for op in (0x3, 0x7, 0xB, 0xF):
            self.assert_closes(1002, self.F(op, b"x"))

    def test_long_or_fragmented_control_frames_1002(self):
        self.assert_closes(1002, self.F(OP_PING, b"x" * 126))
        self.assert_closes(1002, self.F(OP_PING, b"x", fin=False))
        self.assert_closes(1002, self.F(OP_PONG, b"x" * 126))
        # A ping with 125 bytes is fine and answered with the same payload.
        c = self.open()
        c.ping(b"p" * 125)
        opcode, payload, fin = c.recv_frame()
        self.assertEqual((opcode, payload, fin), (OP_PONG, b"p" * 125, True))

    def test_continuation_without_start_1002(self):
        self.assert_closes(1002, self.F(OP_CONT, b"x"))
        self.assert_closes(1002, self.F(OP_CONT, b"x", fin=False))

    def test_new_message_inside_fragmented_one_1002(self):
        self.assert_closes(1002, self.F(OP_TEXT, b'{"type":', fin=False), self.F(OP_TEXT, b'"typing"}'))

    def test_64bit_length_top_bit_1002(self):
        self.assert_closes(1002, self.F(OP_TEXT, b"", length_override=(64, (1 << 63) | 5)))

    def test_message_too_big_1009_from_header(self):
        # Only the header and a few bytes are sent: the verdict may not wait
        # for the payload.
        self.assert_closes(1009, self.F(OP_TEXT, b"x" * 10, length_override=2000)[:2 + 2 + 4 + 10])
        self.assert_closes(1009, self.F(OP_TEXT, b"", length_override=(64, 1 << 40)))
        # Fragments adding up to more than the limit.
        self.assert_closes(1009, self.F(OP_TEXT, b" " * 600, fin=False),
                           self.F(OP_CONT, b"x" * 10, length_override=600)[:2 + 2 + 4 + 10])
        # Exactly the limit is a message (here one with too long a content).
        c = self.open()
        doc = {"type": "message", "content": ""}
        doc["content"] = "z" * (1024 - len(json.dumps(doc)))
        text = json.dumps(doc).encode()
        self.assertEqual(len(text), 1024)
        c.send_frame(OP_TEXT, text)
        self.assert_error_frame(c.recv_json(), "too_large")

    def assert_error_frame(self, doc, code):
        self.assertEqual((doc.get("type"), doc.get("code")), ("error", code), doc)

    def test_invalid_utf8_1007(self):
        for bad in (b'{"type":"typing","x":"\xff"}', b'{"type":"typing","x":"\xc0\xaf"}',
                    b'{"type":"typing","x":"\xed\xa0\x80"}', b'{"type":"typing","x":"\xf4\x90\x80\x80"}'):
            self.assert_closes(1007, self.F(OP_TEXT, bad))

    def test_invalid_utf8_across_fragments_1007(self):
        self.assert_closes(1007, self.F(OP_TEXT, b'{"type":"typing","x":"\xe2\x82', fin=False),
                           self.F(OP_CONT, b'("}'))
        # Truncated at the end of the message.
        self.assert_closes(1007, self.F(OP_TEXT, b'{"type":"typing"}\xe2', fin=False),
                           self.F(OP_CONT, b"\x82"))

    def test_valid_utf8_across_fragments(self):
        c = self.open()
        text = json.dumps({"type": "message", "content": "\u20ac \U0001F600", "client_msg_id": "u1"},
                          ensure_ascii=False).encode()
        cut = text.index(b"\xe2") + 2          # inside the euro sign
        cut2 = text.index(b"\xf0") + 1         # inside the emoji
        c.send_raw(self.F(OP_TEXT, text[:cut], fin=False) + self.F(OP_CONT, text[cut:cut2], fin=False)
                   + self.F(OP_CONT, text[cut2:]))
        ack, own = self.send_message_from(c, "u1")
        self.assertEqual(own["content"], "\u20ac \U0001F600")

    def send_message_from(self, c, cmid):
        got = {}
        while len(got) < 2:
            doc = c.recv_json()
            got[doc["type"]] = doc
        self.assertEqual(got["ack"]["client_msg_id"], cmid)
        return got["ack"], got["message"]

    def test_binary_frame_1003(self):
        self.assert_closes(1003, self.F(OP_BINARY, b"\x00\x01"))
        self.assert_closes(1003, self.F(OP_BINARY, b"\x00", fin=False), self.F(OP_CONT, b"\x01"))

    def test_close_with_one_byte_1002(self):
        self.assert_closes(1002, self.F(OP_CLOSE, b"\x03"))

    def test_invalid_close_codes_1002(self):
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535):
            c = self.open()
            c.send_frame(OP_CLOSE, struct.pack("!H", code))
            c.close_sent = True
            got = c.expect_close()
            self.assertEqual(got[0], 1002, (code, got))

    def test_close_reason_not_utf8_1007(self):
        c = self.open()
        c.send_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye \xff")
        c.close_sent = True
        self.assertEqual(c.expect_close()[0], 1007)

    def test_valid_close_is_echoed(self):
        for code in (1000, 1001, 1003, 1011, 3000, 4999):
            c = self.open()
            c.close(code, "bye")
            self.assertEqual(c.expect_close()[0], code)
        # Without a code: answered with no code or 1000.
        c = self.open()
        c.close(None)
        self.assertIn(c.expect_close()[0], (1005, 1000))

    def test_fragmented_text_with_ping_in_between(self):
        c = self.open()
        text = json.dumps({"type": "message", "content": "in three parts", "client_msg_id": "f1"}).encode()
        c.send_frame(OP_TEXT, text[:10], fin=False)
        c.send_frame(OP_CONT, text[10:20], fin=False)
        c.send_frame(OP_PING, b"hello")
        opcode, payload, fin = c.recv_frame()
        self.assertEqual((opcode, payload), (OP_PONG, b"hello"))
        c.send_frame(OP_CONT, text[20:])
        ack, own = self.send_message_from(c, "f1")
        self.assertEqual(own["content"], "in three parts")
        # Unsolicited pongs are ignored.
        c.send_frame(OP_PONG, b"whatever")
        c.send_json({"type": "history", "limit": 1})
        self.assertEqual(self.next_of(c, "history")["messages"][0]["id"], ack["id"])

    def test_frames_split_byte_by_byte(self):
        c = self.open()
        data = self.F(OP_TEXT, json.dumps({"type": "message", "content": "slowly", "client_msg_id": "s1"}).encode())
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            c.send_raw(data[i:i + 1])
            if i % 8 == 0:
                time.sleep(0.002)
        ack, own = self.send_message_from(c, "s1")
        self.assertEqual(own["content"], "slowly")

    def test_many_frames_in_one_write(self):
        c = self.open()
        c.send_raw(b"".join(self.F(OP_PING, b"%d" % i) for i in range(20)))
        pongs = [c.recv_frame() for _ in range(20)]
        self.assertEqual([p[1] for p in pongs], [b"%d" % i for i in range(20)])


class CloseAfterRequests(WSCase):
    """A client's close frame that comes right after its requests (in the
    same write) waits for their replies: acks and history are sent, then
    the close is echoed (RFC 6455 5.5.1 lets the server finish first)."""

    settings = {"workers": "1", "redis_timeout": "1s"}
    F = staticmethod(WSClient.encode_frame)

    def send_then_close(self, c, docs, code=1000):
        """Sends DOCS and a close frame in one write."""
        frames = [self.F(OP_TEXT, json.dumps(d)) for d in docs]
        c.send_raw(b"".join(frames) + self.F(OP_CLOSE, struct.pack("!H", code)))
        c.close_sent = True

    def until_close(self, c, timeout=T):
        """The text messages the server sends before its close frame, and
        that frame's code; then the TCP connection must end."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            opcode, payload, _ = c.recv_frame(max(0.0, deadline - time.monotonic()))
            if opcode == OP_CLOSE:
                break
            if opcode == OP_TEXT:
                got.append(json.loads(payload))
        c.expect_eof(T)
        return [d for d in got if d.get("type") in ("ack", "history", "error")], c.close_received[0]

    def test_message_then_close_gets_the_ack_first(self):
        room, alice = self.name("mc"), self.name("alice")
        a = self.connect(alice, room)
        self.send_then_close(a, [{"type": "message", "content": "last words", "client_msg_id": "lw"}])
        replies, code = self.until_close(a)
        self.assertEqual(code, 1000)
        self.assertEqual([(d["type"], d["client_msg_id"]) for d in replies], [("ack", "lw")], replies)
        _, _, body = self.p.request("GET", "/api/rooms/%s/messages?token=%s" % (room, self.token(alice)))
        stored = json.loads(body)["messages"]
        self.assertEqual([(m["id"], m["content"]) for m in stored], [(replies[0]["id"], "last words")])

    def test_direct_then_close_gets_the_ack_first(self):
        alice, bob = self.name("alice"), self.name("bob")
        a = self.connect(alice, self.name("dc"))
        b = self.connect(bob, self.name("elsewhere"))
        self.send_then_close(a, [{"type": "direct", "to": bob, "content": "bye", "client_msg_id": "d1"}], 4000)
        replies, code = self.until_close(a)
        self.assertEqual(code, 4000)
        self.assertEqual([(d["type"], d["client_msg_id"]) for d in replies], [("ack", "d1")], replies)
        direct = self.next_of(b, "direct")
        self.assertEqual((direct["id"], direct["content"]), (replies[0]["id"], "bye"))

    def test_history_then_close_gets_the_history_first(self):
        room, alice = self.name("hc"), self.name("alice")
        ids = [publish(self.p, self.token(alice), room, "h%d" % i)[1]["id"] for i in range(3)]
        a = self.connect(alice, room)
        self.send_then_close(a, [{"type": "history", "limit": 2}])
        replies, code = self.until_close(a)
        self.assertEqual(code, 1000)
        self.assertEqual(len(replies), 1, replies)
        self.assertEqual([m["id"] for m in replies[0]["messages"]], ids[1:])

    def test_every_reply_before_the_close(self):
        room, alice, bob = self.name("all"), self.name("alice"), self.name("bob")
        a = self.connect(alice, room)
        self.connect(bob, room)
        self.send_then_close(a, [{"type": "message", "content": "m%d" % i, "client_msg_id": "m%d" % i}
                                 for i in range(5)]
                             + [{"type": "direct", "to": bob, "content": "d", "client_msg_id": "d"},
                                {"type": "history"}])
        replies, code = self.until_close(a)
        self.assertEqual(code, 1000)
        acks = sorted(d["client_msg_id"] for d in replies if d["type"] == "ack")
        self.assertEqual(acks, ["d", "m0", "m1", "m2", "m3", "m4"], replies)
        self.assertEqual(len([d for d in replies if d["type"] == "history"]), 1, replies)

    def test_close_waits_for_redis_only_so_long(self):
        # Redis stops answering: the store call fails after redis_timeout,
        # the client hears that, and then gets its close.
        room, alice = self.name("slow"), self.name("alice")
        a = self.connect(alice, room)
        os.kill(self.env.redis.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            self.send_then_close(a, [{"type": "message", "content": "x", "client_msg_id": "s"}])
            replies, code = self.until_close(a)
            waited = time.monotonic() - t0
        finally:
            os.kill(self.env.redis.proc.pid, signal.SIGCONT)
        self.assertEqual(code, 1000)
        self.assertEqual([(d["type"], d.get("code")) for d in replies], [("error", "redis_unavailable")], replies)
        self.assertLess(waited, 4 * SLOW)
        wait_for(lambda: self.p.request("GET", "/healthz")[0] == 200, timeout=10, what="redis back")


# ---------------------------------------------------------------------------
# Keepalive, slow consumers, shutdown
# ---------------------------------------------------------------------------

class RedisDownAtJoin(unittest.TestCase):
    def test_join_without_redis_ends_with_an_error_not_a_hang(self):
        # A JWT needs no Redis to pass the handshake; the room cannot be
        # joined while Redis is gone, and the client is told so.
        env = Env()
        self.addCleanup(env.close)
        p = env.parleyd({"workers": "1", "jwt_secret": JWT_SECRET, "redis_timeout": "500ms"})
        env.redis.stop()
        wait_for(lambda: p.request("GET", "/healthz")[0] == 503, what="redis down")
        tok = jwt({"sub": "early", "exp": int(time.time()) + 60})
        c = WSClient.connect(p.port, "/ws/chat/lobby?token=" + tok, timeout=T)
        self.addCleanup(c.shutdown)
        t0 = time.monotonic()
        err = c.recv_json(T, type="error")
        self.assertEqual(err["code"], "redis_unavailable")
        code, _ = c.expect_close(T)
        self.assertEqual(code, 1011)
        self.assertLess(time.monotonic() - t0, 4 * SLOW)


    def test_a_stream_answers_once_it_hears_the_room(self):
        """An event stream's 200 comes once the room's subscription is
        confirmed (held up here by stopping the host's bus), so a client
        that has its 200 hears every message published after it."""
        env = Env()
        self.addCleanup(env.close)
        p = env.parleyd({"workers": "1", "jwt_secret": JWT_SECRET})
        tok = jwt({"sub": "listener", "exp": int(time.time()) + 60})
        bus = p.bus_pid()
        os.kill(bus, signal.SIGSTOP)
        try:
            stream = SSEClient(p.port, "/api/rooms/heard/events?token=" + tok)
            self.addCleanup(stream.close)
            time.sleep(0.5)
            self.assertIsNone(stream.status)
        finally:
            os.kill(bus, signal.SIGCONT)
        self.assertEqual(stream.wait_ready(), 200)
        status, _, _ = p.request("POST", "/api/rooms/heard/messages", body=json.dumps({"content": "first"}),
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + tok})
        self.assertEqual(status, 201)
        self.assertEqual(stream.wait_events(1, kind="message")[0]["json"]["content"], "first")

    def test_a_stream_whose_subscription_never_comes_ends(self):
        """The host's bus is held up: the room's subscription is never
        confirmed.  A WebSocket is told redis_unavailable and closed, an
        event stream ends (its client reconnects), both after twice
        redis_timeout, instead of waiting in silence."""
        env = Env()
        self.addCleanup(env.close)
        p = env.parleyd({"workers": "1", "jwt_secret": JWT_SECRET, "redis_timeout": "500ms"})
        tok = jwt({"sub": "waiting", "exp": int(time.time()) + 60})
        bus = p.bus_pid()
        os.kill(bus, signal.SIGSTOP)
        self.addCleanup(os.kill, bus, signal.SIGCONT)
        t0 = time.monotonic()
        stream = SSEClient(p.port, "/api/rooms/held/events?token=" + tok)
        self.addCleanup(stream.close)
        c = WSClient.connect(p.port, "/ws/chat/held?token=" + tok, timeout=T)
        self.addCleanup(c.shutdown)
        self.assertEqual(c.recv_json(T, type="error")["code"], "redis_unavailable")
        self.assertEqual(c.expect_close(T)[0], 1011)
        wait_for(lambda: stream.closed, T, what="the stream to end")
        self.assertLess(time.monotonic() - t0, 4 * SLOW)
        self.assertEqual(stream.status, 200)


class AuthExpiry(unittest.TestCase):
    def test_expired_jwt_closes_with_1008(self):
        env = Env()
        self.addCleanup(env.close)
        p = env.parleyd({"workers": "1", "jwt_secret": JWT_SECRET})
        tok = jwt({"sub": "brief", "exp": int(time.time()) + 2})
        c = WSClient.connect(p.port, "/ws/chat/lobby?token=" + tok, timeout=T)
        self.addCleanup(c.shutdown)
        self.assertEqual(c.recv_json(T)["type"], "welcome")
        code, reason = c.expect_close(6 * SLOW)
        self.assertEqual((code, reason), (1008, "token expired"))


class KeepaliveSpread(WSCase):
    settings = {"workers": "1", "ws_ping_interval": "6s", "ws_pong_timeout": "10s"}

    def test_connections_opened_together_are_not_pinged_together(self):
        # Each connection's interval is shortened by up to a quarter: opened
        # in the same second, they are pinged over 1.5 s, not in one sweep.
        room = self.name("spread")
        opened, pinged = [], {}
        for i in range(24):
            self.connect(self.name("u%d-" % i), room)
            opened.append(time.monotonic())
        deadline = time.monotonic() + 9 * SLOW
        while len(pinged) < len(opened) and time.monotonic() < deadline:
            for i, c in enumerate(self.clients):
                try:
                    while i not in pinged:
                        op, _, _ = c.recv_frame(0.005, auto_pong=False)
                        if op == OP_PING:
                            pinged[i] = time.monotonic() - opened[i]
                except socket.timeout:
                    pass
        self.assertEqual(len(pinged), len(opened), pinged)
        delays = sorted(pinged.values())
        # Unspread, every delay is 6 s plus the 1 s sweep's granularity.
        self.assertLess(delays[0], 5.7, delays)
        self.assertGreater(delays[-1] - delays[0], 0.7, delays)


class Keepalive(WSCase):
    settings = {"workers": "1", "ws_ping_interval": "1s", "ws_pong_timeout": "1s"}

    def test_server_pings_and_drops_silent_peer(self):
        room = self.name("ka")
        silent = self.connect(self.name("silent"), room)
        lively = self.connect(self.name("lively"), room)
        t_open = time.monotonic()
        first_ping = None
        closed_at = None
        # Serve both: LIVELY answers pings, SILENT never does.
        deadline = time.monotonic() + 8 * SLOW
        while time.monotonic() < deadline and closed_at is None:
            try:
                op, payload, fin = silent.recv_frame(0.05, auto_pong=False)
                if op == OP_PING and first_ping is None:
                    first_ping = time.monotonic()
                if op == OP_CLOSE:
                    silent.expect_close(2 * SLOW)
                    closed_at = time.monotonic()
            except ConnectionClosed:
                closed_at = time.monotonic()
            except socket.timeout:
                pass
            try:
                lively.recv_frame(0.05)
            except socket.timeout:
                pass
        self.assertIsNotNone(first_ping, "no ping from the server")
        # An idle connection is pinged after the ping interval; a keepalive
        # timer may add up to about one more second of granularity.
        self.assertLess(first_ping - t_open, 2.0 + 0.5 * SLOW, first_ping - t_open)
        self.assertIsNotNone(closed_at, "silent peer not closed")
        # Within the ping interval plus the pong timeout (plus slack).
        self.assertLess(closed_at - first_ping, 2.0 + 0.5 * SLOW, closed_at - first_ping)
        if silent.close_received:
            self.assertIn(silent.close_received[0], (1001, 1002, 1006, 1008, 1011))
        # The one that answers stays open and keeps being pinged. A pong
        # counts as traffic, so with the 1 s sweep an answering peer may be
        # pinged only every other sweep: wait for the second ping, not a time.
        end = time.monotonic() + 4 * SLOW
        while time.monotonic() < end and len(lively.pings) < 2:
            try:
                lively.recv_frame(0.1)
            except socket.timeout:
                pass
        self.assertGreaterEqual(len(lively.pings), 2, lively.pings)
        ack = None
        lively.send_json({"type": "message", "content": "alive", "client_msg_id": "k1"})
        ack = lively.recv_json(type="ack")
        self.assertEqual(ack["client_msg_id"], "k1")


class SlowConsumer(WSCase):
    settings = {"workers": "2", "rate_limit": "0", "ws_max_backlog": "64k", "max_content": "4k"}
    messages = 500          # of 1 KiB: about 8 times ws_max_backlog

    def test_slow_consumer_cut_off_others_unaffected(self):
        room, alice, bob, slow = self.name("slow"), self.name("alice"), self.name("bob"), self.name("slow")
        before = metric(self.p, "parley_slow_consumers_closed_total")
        s = self.connect(slow, room, rcvbuf=4096, welcome=False)
        b = self.connect(bob, room)
        # SLOW never reads, not even its welcome; it is in the room once the
        # server counts it as a member.
        wait_for(lambda: redis_cli(self.env.redis, "HEXISTS", "parley:room:%s:members" % room, slow) == "1",
                 what="slow consumer joined")
        tok = self.token(alice)
        ids = []
        failures = []

        def publisher():
            conn = http.client.HTTPConnection("127.0.0.1", self.p.port, timeout=T)
            try:
                for i in range(self.messages):
                    body = json.dumps({"content": ("%04d" % i) + "x" * 1020})
                    conn.request("POST", "/api/rooms/%s/messages" % room, body=body,
                                 headers={"Content-Type": "application/json",
                                          "Authorization": "Bearer " + tok})
                    resp = conn.getresponse()
                    data = resp.read()
                    if resp.status != 201:
                        failures.append((resp.status, data))
                        return
                    ids.append(json.loads(data)["id"])
                    if resp.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", self.p.port, timeout=T)
            except Exception as e:           # reported below
                failures.append(repr(e))
            finally:
                conn.close()

        t = threading.Thread(target=publisher)
        t.start()
        got = []
        try:
            while len(got) < self.messages and not failures:
                doc = b.recv_json(T)
                if doc["type"] == "message":
                    got.append(doc)
        finally:
            t.join()
        self.assertEqual(failures, [])
        self.assertEqual([d["id"] for d in got], ids)
        self.assertEqual([d["content"][:4] for d in got], ["%04d" % i for i in range(self.messages)])
        wait_for(lambda: metric(self.p, "parley_slow_consumers_closed_total") >= before + 1,
                 what="slow consumer counted")
        self.assertEqual(metric(self.p, "parley_slow_consumers_closed_total"), before + 1)
        # The slow one's socket ends (FIN or RST) once read; a close frame,
        # if one made it out, says 1011.
        received = 0
        try:
            while True:
                op, payload, fin = s.recv_frame(T, auto_pong=False)
                received += 1
                if op == OP_CLOSE:
                    self.assertEqual(s.close_received[0], 1011)
                    s.expect_eof(T)
                    break
        except ConnectionClosed:
            pass
        self.assertLess(received, self.messages)
        # The survivor still works.
        self.send_message(b, "after the cut", "after-1")


class WriteDelay(WSCase):
    """write_delay: room events are written in batches at least that far
    apart (the first after a quiet spell at once); replies and control
    frames never wait, and take waiting events along."""

    DELAY = 1.0
    settings = {"write_delay": "1000ms", "workers": "1"}

    def quiet(self, *clients):
        """Waits out the current batch and reads what it carried."""
        time.sleep(self.DELAY * 1.2)
        for c in clients:
            c.drain(quiet=0.1)

    def test_events_after_the_first_wait_and_share_a_write(self):
        room, alice, bob, carol = self.name("wd"), self.name("alice"), self.name("bob"), self.name("carol")
        a = self.connect(alice, room)
        b = self.connect(bob, room)
        sse = SSEClient(self.p.port, "/api/rooms/%s/events?token=%s" % (room, self.token(carol)))
        self.addCleanup(sse.close)
        self.assertEqual(sse.wait_ready(), 200)
        for who in (bob, carol):
            self.assertEqual(self.next_of(a, "presence")["user"], who)
        self.quiet(a, b)
        t0 = time.monotonic()
        b.send_json({"type": "message", "content": "m0", "client_msg_id": "wd0"})
        acks = [self.next_of(b, "ack")]
        first = self.next_of(a, "message")
        arrivals = [time.monotonic() - t0]
        self.assertLess(arrivals[0], self.DELAY * 0.8, "the first event after a quiet spell goes at once")
        t1 = time.monotonic()
        for i in (1, 2):
            b.send_json({"type": "message", "content": "m%d" % i, "client_msg_id": "wd%d" % i})
        acks += [self.next_of(b, "ack") for _ in (1, 2)]
        self.assertLess(time.monotonic() - t1, self.DELAY * 0.8, "acks are replies: never delayed")
        docs = [first]
        for i in (1, 2):
            docs.append(self.next_of(a, "message"))
            arrivals.append(time.monotonic() - t0)
        for i, doc in enumerate(docs):
            self.assert_message(doc, acks[i]["id"], room, bob, "m%d" % i)
        self.assertGreaterEqual(arrivals[1] - arrivals[0], self.DELAY * 0.9, "the next ones wait for the next batch")
        self.assertLess(arrivals[2] - arrivals[1], 0.3, "and share its write")
        evs = sse.wait_events(3, kind="message")
        self.assertEqual([e["id"] for e in evs], [ack["id"] for ack in acks])
        self.assertGreaterEqual(evs[1]["t"] - evs[0]["t"], self.DELAY * 0.9)
        self.assertLess(evs[2]["t"] - evs[1]["t"], 0.3)

    def test_a_pong_takes_the_waiting_events_along(self):
        room, alice, bob = self.name("wdp"), self.name("alice"), self.name("bob")
        a = self.connect(alice, room)
        self.quiet(a)
        t0 = time.monotonic()
        first = [publish(self.p, self.token(bob), room, "goes")[1]]
        self.assert_message(self.next_of(a, "message"), first[0]["id"], room, bob, "goes")
        first.append(publish(self.p, self.token(bob), room, "waits")[1])
        with self.assertRaises(socket.timeout, msg="the second event waits"):
            a.recv_frame(timeout=self.DELAY * 0.3)
        a.ping(b"now")
        opcode, payload, _ = a.recv_frame(timeout=T)
        self.assertEqual(opcode, OP_TEXT, "the waiting event comes first, in order")
        self.assert_message(json.loads(payload), first[1]["id"], room, bob, "waits")
        opcode, payload, _ = a.recv_frame(timeout=T)
        self.assertEqual((opcode, payload), (OP_PONG, b"now"))
        self.assertLess(time.monotonic() - t0, self.DELAY * 0.8)


class Shutdown(WSCase):
    settings = {"workers": "2", "shutdown_timeout": "5s"}

    def test_sigterm_closes_every_client_with_1001(self):
        conns = []
        for i in range(6):
            conns.append(self.connect(self.name("u%d" % (i % 3)), self.name("room%d" % (i % 2))))
        t0 = time.monotonic()
        self.p.signal(signal.SIGTERM)
        for c in conns:
            code, reason = c.expect_close(T)
            self.assertEqual(code, 1001, (code, reason))
        self.assertEqual(self.p.proc.wait(T), 0)
        # Clients that answer the close at once are let go at once: the stop
        # does not sit out the 2 s close-handshake timer.
        self.assertLess(time.monotonic() - t0, 1.5 * SLOW)


class EarlyFrames(WSCase):
    settings = {"workers": "1"}

    def test_a_frame_behind_the_handshake_is_answered(self):
        """A frame sent in the same write as the upgrade request is read at
        once (it waited for the client's next write before), and answered
        as any message before the welcome is."""
        frame = WSClient.encode_frame(OP_TEXT, json.dumps({"type": "history", "limit": 1}).encode())
        resp, sock, rest = raw_handshake(self.p.port, build_request(
            "/ws/chat/%s?token=%s" % (self.name("early"), self.token(self.name("e"))), upgrade_headers(new_key()))
            + frame)
        self.assertEqual(resp.status, 101)
        c = WSClient(sock, rest, timeout=T)
        self.clients.append(c)
        got = [c.recv_json(), c.recv_json()]
        self.assertIn({"type": "error", "code": "bad_request", "message": "wait for the welcome before sending"}, got)
        self.assertIn("welcome", [g["type"] for g in got])


class DrainSpread(WSCase):
    settings = {"workers": "1", "shutdown_timeout": "6s", "drain_spread": "2s"}

    def test_goodbyes_are_spread_over_drain_spread(self):
        """A stopping instance closes its long-lived connections evenly over
        drain_spread, not all in one second."""
        room = self.name("spread")
        conns = [self.connect(self.name("ws%d" % i), room) for i in range(30)]
        streams = [SSEClient(self.p.port, "/api/rooms/%s/events?token=%s" % (room, self.token(self.name("s%d" % i))))
                   for i in range(10)]
        for st in streams:
            self.assertEqual(st.wait_ready(), 200)
        ended = []
        lock = threading.Lock()

        def watch_ws(c):
            code, _ = c.expect_close(T)
            with lock:
                ended.append((time.monotonic(), "ws", code))

        def watch_sse(st):
            wait_for(lambda: st.closed, T, what="the stream to end")
            with lock:
                ended.append((time.monotonic(), "sse", None))
        threads = [threading.Thread(target=watch_ws, args=(c,)) for c in conns]
        threads += [threading.Thread(target=watch_sse, args=(st,)) for st in streams]
        t0 = time.monotonic()
        self.p.signal(signal.SIGTERM)
        for t in threads:
            t.start()
        for t in threads:
            t.join(3 * T)
        for st in streams:
            st.close()
        self.assertEqual(len(ended), 40)
        self.assertTrue(all(code == 1001 for _, kind, code in ended if kind == "ws"))
        times = sorted(t - t0 for t, _, _ in ended)
        # Evenly: about a fifth of them in each 0.4 s, the last near 2 s.
        self.assertLess(sum(1 for t in times if t < 0.5), 20, times)
        self.assertGreater(times[-1], 1.5, times)
        self.assertLess(times[-1], 2.0 + 1.0 * SLOW, times)
        self.assertEqual(self.p.proc.wait(T), 0)


if __name__ == "__main__":
    unittest.main()
