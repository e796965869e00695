"""Who may be whom: backend-minted sessions, open sign-in, reserved names,
revocation reaching open connections, sign-in limits per address, trusted
proxies, browser origins and room retention - on real parleyd and
redis-server processes."""

import json
import os
import signal
import socket
import subprocess
import time
import unittest

import harness
from harness import SLOW, Env, SSEClient, publish, redis_cli, session, wait_for
from wsclient import WSClient, handshake

T = 10.0 * SLOW
JWT_SECRET = "auth-test-secret"
KEY = {"Authorization": "Bearer " + harness.SESSION_KEY}
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def jwt(user, exp_in=3600):
    return harness.jwt({"sub": user, "exp": int(time.time()) + exp_in}, JWT_SECRET)


class AuthCase(unittest.TestCase):
    settings = {}

    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.p = cls.env.parleyd(dict({"workers": "2", "jwt_secret": JWT_SECRET}, **cls.settings))

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close() if isinstance(c, SSEClient) else c.shutdown()

    def sign_in(self, user, headers=None, body=None, p=None):
        """POST /api/sessions; returns (status, headers, parsed body)."""
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        status, rh, data = (p or self.p).request("POST", "/api/sessions",
                                                 body=json.dumps(body if body is not None else {"user": user}),
                                                 headers=h)
        return status, rh, json.loads(data) if data else None

    def assert_error(self, got, status, code):
        self.assertEqual(got[0], status, got)
        self.assertEqual(got[2]["error"]["code"], code, got)

    def ws(self, token, room, headers=None):
        c = WSClient.connect(self.p.port, "/ws/chat/%s?token=%s" % (room, token), headers=headers, timeout=T)
        self.clients.append(c)
        self.assertEqual(c.recv_json()["type"], "welcome")
        return c

    def sse(self, token, room):
        c = SSEClient(self.p.port, "/api/rooms/%s/events?token=%s" % (room, token))
        self.clients.append(c)
        self.assertEqual(c.wait_ready(), 200)
        return c

    def redis(self, *args):
        return redis_cli(self.env.redis, *args)


class BackendSessions(AuthCase):
    """The default: only the application backend (with the key) makes sessions."""

    def test_no_key_no_session(self):
        got = self.sign_in("alice")
        self.assert_error(got, 401, "unauthorized")
        self.assertEqual(got[1]["www-authenticate"], "Bearer")
        self.assertIn("session key", got[2]["error"]["message"])
        for wrong in ("Bearer nope", "Bearer " + harness.SESSION_KEY + "x", "Bearer " + harness.SESSION_KEY[:-1],
                      "Basic " + harness.SESSION_KEY, "Bearer "):
            got = self.sign_in("alice", headers={"Authorization": wrong})
            self.assert_error(got, 401, "unauthorized")
        self.assertEqual(self.redis("EXISTS", "parley:user:alice:sessions"), "0")
        # The key never shows in the log.
        self.assertNotIn(harness.SESSION_KEY, self.p.log())
        self.assertRegex(self.p.log(), r"event=key_loaded key=session_key source=file set=yes")

    def test_the_backend_chooses_user_and_lifetime(self):
        got = self.sign_in(None, headers=KEY, body={"user": "erin", "ttl": 2})
        self.assertEqual(got[0], 201, got)
        self.assertEqual((got[2]["user"], got[2]["expires_in"]), ("erin", 2))
        token = got[2]["token"]
        self.assertLessEqual(int(self.redis("PTTL", "parley:session:" + token)), 2000)
        self.assertEqual(publish(self.p, token, "ttlroom", "hi")[0], 201)
        # A session ends at its time, however much it is used.
        wait_for(lambda: publish(self.p, token, "ttlroom", "late")[0] == 401, 5, interval=0.2,
                 what="the session to end")
        # Several sessions of one user, as a backend makes them (devices).
        tokens = {self.sign_in("erin", headers=KEY)[2]["token"] for _ in range(3)}
        self.assertEqual(len(tokens), 3)
        members = self.redis("ZRANGE", "parley:user:erin:sessions", "0", "-1").split()
        self.assertEqual(set(members), tokens)

    def test_reserved_names(self):
        for name in ("agent", "Agent", "AGENT", "admin", "System", "parley", "root"):
            self.assert_error(self.sign_in(name, headers=KEY), 403, "forbidden")
        # A JWT naming the agent is refused as well, over HTTP and WebSocket.
        status, _, body = self.p.request("GET", "/api/rooms/lobby/messages",
                                         headers={"Authorization": "Bearer " + jwt("agent")})
        self.assertEqual((status, json.loads(body)["error"]["code"]), (403, "forbidden"))
        resp = handshake(self.p.port, "/ws/chat/lobby?token=" + jwt("Agent"))
        self.assertEqual(resp.status, 403)
        # A session for a reserved name that is already in Redis (made before
        # the name was reserved) is refused at use.
        self.redis("HSET", "parley:session:" + "A" * 43, "user", "admin")
        status, _, _ = self.p.request("GET", "/api/rooms/lobby/messages",
                                      headers={"Authorization": "Bearer " + "A" * 43})
        self.assertEqual(status, 403)
        # Publishing checks the session in the publish script: same answer,
        # in any letter case, and nothing stored.
        self.redis("HSET", "parley:session:" + "B" * 43, "user", "Root")
        for token in ("A" * 43, "B" * 43):
            status, body = publish(self.p, token, "lobby", "as admin")
            self.assertEqual((status, body["error"]["code"]), (403, "forbidden"))
        self.assertEqual(self.redis("EXISTS", "parley:room:lobby:log"), "0")

    def test_a_session_with_an_impossible_name_cannot_publish(self):
        """A session hash written by something else than parleyd, with a
        name parley never gives out, publishes nothing."""
        for i, name in enumerate(("x" * 65, "..", ".", "a b", "")):
            token = chr(ord("C") + i) * 43
            self.redis("HSET", "parley:session:" + token, "user", name)
            status, body = publish(self.p, token, "odd", "as %r" % name)
            self.assertEqual((status, body["error"]["code"]), (401, "unauthorized"))
        self.assertEqual(self.redis("EXISTS", "parley:room:odd:log"), "0")

    def test_max_sessions_per_user(self):
        first = session(self.p, "many")
        c = self.ws(first, "maxroom")
        for _ in range(256):
            session(self.p, "many")
        self.assertEqual(int(self.redis("ZCARD", "parley:user:many:sessions")), 256)
        self.assertEqual(self.redis("EXISTS", "parley:session:" + first), "0")
        # The session pushed out was revoked: its connection closes too.
        self.assertEqual(c.expect_close(timeout=T)[0], 1008)

    def test_whoami_and_config(self):
        token = session(self.p, "frank")
        status, _, body = self.p.request("GET", "/api/sessions/current",
                                         headers={"Authorization": "Bearer " + token})
        doc = json.loads(body)
        self.assertEqual((status, doc["user"], doc["kind"]), (200, "frank", "session"))
        self.assertTrue(86390 <= doc["expires_in"] <= 86400)
        status, _, body = self.p.request("GET", "/api/sessions/current",
                                         headers={"Authorization": "Bearer " + jwt("gina", 100)})
        doc = json.loads(body)
        self.assertEqual((status, doc["user"], doc["kind"]), (200, "gina", "jwt"))
        self.assertEqual(self.p.request("GET", "/api/sessions/current")[0], 401)
        status, headers, body = self.p.request("GET", "/api/config")
        doc = json.loads(body)
        self.assertEqual(status, 200)
        self.assertEqual((doc["open_sessions"], doc["agent_name"], doc["max_content"]), (False, "agent", 4096))
        self.assertEqual(headers["cache-control"], "no-store")


class OpenSignIn(AuthCase):
    settings = {"open_sessions": "on"}

    def test_a_live_name_cannot_be_taken(self):
        """The audit's case: a second client took "alice" and read bob's
        direct message to alice."""
        got = self.sign_in("alice")
        self.assertEqual(got[0], 201, got)
        alice = got[2]["token"]
        self.assertEqual(self.redis("HGET", "parley:session:" + alice, "mode"), "open")
        self.assert_error(self.sign_in("alice"), 409, "name_taken")
        self.assert_error(self.sign_in("alice", body={"user": "alice", "ttl": 60}), 400, "bad_request")
        bob = self.sign_in("bob")[2]["token"]
        a, b = self.ws(alice, "dm"), self.ws(bob, "dm")
        b.send_json({"type": "direct", "to": "alice", "content": "psst"})
        self.assertEqual(a.recv_json(type="direct")["content"], "psst")
        # The backend (with the key) is not bound by open sign-in's rule.
        self.assertEqual(self.sign_in("alice", headers=KEY)[0], 201)
        # Once alice's sessions are revoked, the name is free again.
        self.redis("FCALL", "parley_revoke_user", "0", "alice")
        a.expect_close(timeout=T)
        wait_for(lambda: self.sign_in("alice")[0] == 201, T, interval=0.2, what="the name to be free")

    def test_signing_out_frees_the_name(self):
        token = self.sign_in("olive")[2]["token"]
        c = self.ws(token, "out")
        other = self.ws(self.sign_in("olive2")[2]["token"], "out")
        status, _, _ = self.p.request("DELETE", "/api/sessions/current", headers={"Authorization": "Bearer " + token})
        self.assertEqual(status, 204)
        self.assertEqual(c.expect_close(timeout=T), (1008, "session revoked"))
        self.assertEqual(publish(self.p, token, "out", "x")[0], 401)
        self.assertEqual(self.sign_in("olive")[0], 201)
        # Only sessions end this way; a JWT ends at its exp.
        status, _, body = self.p.request("DELETE", "/api/sessions/current",
                                         headers={"Authorization": "Bearer " + jwt("olive3")})
        self.assertEqual((status, json.loads(body)["error"]["code"]), (400, "bad_request"))
        self.assertEqual(self.p.request("DELETE", "/api/sessions/current")[0], 401)
        other.send_json({"type": "history", "limit": 1})
        self.assertEqual(other.recv_json(type="history")["type"], "history")

    def test_a_name_in_use_by_a_jwt_user_cannot_be_taken(self):
        c = self.ws(jwt("dana"), "jwtroom")
        self.assert_error(self.sign_in("dana"), 409, "name_taken")
        c.close()
        c.expect_close(timeout=T)
        wait_for(lambda: self.sign_in("dana")[0] == 201, T, interval=0.2, what="dana's name to be free")

    def test_agent_name_never(self):
        """The audit's case: a client took "agent" and posted as the AI."""
        for name in ("agent", "Agent", "admin"):
            self.assert_error(self.sign_in(name), 403, "forbidden")
        status, _, body = self.p.request("GET", "/api/config")
        self.assertTrue(json.loads(body)["open_sessions"])


class SignInLimits(AuthCase):
    settings = {"open_sessions": "on", "session_rate_limit": "5", "trusted_proxies": "127.0.0.2"}

    def test_per_address(self):
        for i in range(5):
            self.assertEqual(self.sign_in("lim%d" % i)[0], 201)
        got = self.sign_in("lim5")
        self.assert_error(got, 429, "rate_limited")
        self.assertTrue(1 <= int(got[1]["retry-after"]) <= 12, got[1])
        # The application backend is not limited.
        for i in range(10):
            self.assertEqual(self.sign_in("backend%d" % i, headers=KEY)[0], 201)
        # Guessing the key costs from the same budget: 429, not 401.
        self.assert_error(self.sign_in("x", headers={"Authorization": "Bearer guess"}), 429, "rate_limited")
        # X-Forwarded-For from an untrusted peer is the client's own word.
        got = self.sign_in("lim6", headers={"X-Forwarded-For": "198.51.100.7"})
        self.assert_error(got, 429, "rate_limited")

    def via_proxy(self, user, xff):
        """POST /api/sessions from the trusted proxy, for client XFF; returns the status."""
        body = json.dumps({"user": user}).encode()
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", self.p.port))
        s.sendall(b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"X-Forwarded-For: %s\r\nContent-Length: %d\r\n\r\n%s" % (xff.encode(), len(body), body))
        status = int(s.recv(4096).split(b" ")[1])
        s.close()
        return status

    def test_one_budget_per_ipv6_64_and_per_ipv4(self):
        """Rotating addresses within one IPv6 /64 (the audit) or writing an
        IPv4 address as IPv6 does not buy a fresh budget."""
        got = [self.via_proxy("six%d" % i, "2001:db8:7:7::%x" % (i + 1)) for i in range(7)]
        self.assertEqual(got, [201] * 5 + [429] * 2)
        got = [self.via_proxy("four%d" % i, "198.51.100.77" if i % 2 else "::ffff:198.51.100.77") for i in range(7)]
        self.assertEqual(got, [201] * 5 + [429] * 2)
        self.assertEqual(self.via_proxy("other64", "2001:db8:7:8::1"), 201)

    def test_trusted_proxy_passes_the_client_on(self):
        sock_req = b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" \
                   b"X-Forwarded-For: 203.0.113.9, 198.51.100.%d\r\nContent-Length: %d\r\n\r\n%s"
        for i in range(7):
            body = json.dumps({"user": "proxied%d" % i}).encode()
            s = socket.socket()
            s.bind(("127.0.0.2", 0))      # the trusted proxy
            s.connect(("127.0.0.1", self.p.port))
            s.sendall(sock_req % (i, len(body), body))
            head = s.recv(4096)
            s.close()
            # Each request comes from another client behind the proxy.
            self.assertIn(b" 201 ", head.split(b"\r\n")[0])
        self.assertEqual(self.redis("HGET", "parley:session:" +
                                    self.redis("ZRANGE", "parley:user:proxied3:sessions", "0", "0"), "addr"),
                         "198.51.100.3")
        self.assertRegex(self.p.log(), r"event=session_created user=proxied6 mode=open client=198\.51\.100\.6")
        # A proxy appends its own line after the client's: all lines count,
        # in order, so the client's own line cannot name the client.
        body = json.dumps({"user": "twolines"}).encode()
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", self.p.port))
        s.sendall(b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"X-Forwarded-For: 10.9.9.9\r\nX-Forwarded-For: 203.0.113.50\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.assertIn(b" 201 ", s.recv(4096).split(b"\r\n")[0])
        s.close()
        self.assertRegex(self.p.log(), r"event=session_created user=twolines mode=open client=203\.0\.113\.50")


class Revocation(AuthCase):

    def test_revoking_a_user_closes_their_connections(self):
        t1, t2 = session(self.p, "henry"), session(self.p, "henry")
        ws1, ws2 = self.ws(t1, "rv"), self.ws(t2, "rv2")
        stream = self.sse(t1, "rv")
        by_jwt = self.ws(jwt("henry"), "rv3")
        other = self.ws(session(self.p, "ivy"), "rv")
        self.assertEqual(set(self.redis("ZRANGE", "parley:user:henry:sessions", "0", "-1").split()), {t1, t2})
        start = time.monotonic()
        self.assertEqual(self.redis("FCALL", "parley_revoke_user", "0", "henry"), "2")
        self.assertEqual(ws1.expect_close(timeout=T), (1008, "session revoked"))
        self.assertEqual(ws2.expect_close(timeout=T), (1008, "session revoked"))
        wait_for(lambda: stream.ended, T, what="the SSE stream to end")
        self.assertLess(time.monotonic() - start, 1.0 * SLOW)
        # Tokens no longer work; the JWT connection and other users stay.
        self.assertEqual(publish(self.p, t1, "rv", "x")[0], 401)
        self.assertEqual(self.redis("EXISTS", "parley:user:henry:sessions"), "0")
        for c in (by_jwt, other):
            c.send_json({"type": "history", "limit": 1})
            self.assertEqual(c.recv_json(type="history")["type"], "history")

    def test_revoking_one_session(self):
        t1, t2 = session(self.p, "jack"), session(self.p, "jack")
        ws1, ws2 = self.ws(t1, "one"), self.ws(t2, "one")
        self.assertEqual(self.redis("FCALL", "parley_revoke_session", "0", t1), "1")
        self.assertEqual(ws1.expect_close(timeout=T), (1008, "session revoked"))
        ws2.send_json({"type": "message", "content": "still here", "client_msg_id": "c1"})
        self.assertEqual(ws2.recv_json(type="ack")["client_msg_id"], "c1")
        self.assertEqual(self.redis("FCALL", "parley_revoke_session", "0", t1), "0")
        self.assertEqual(self.redis("ZRANGE", "parley:user:jack:sessions", "0", "-1"), t2)

    def test_publishing_stops_at_once(self):
        """A message sent after the revocation, before its event arrives
        (the host's bus is held up), is not stored: the publish script
        checks the session, and the connection closes."""
        token = session(self.p, "quinn")
        c = self.ws(token, "stop")
        bus = self.p.bus_pid()
        os.kill(bus, signal.SIGSTOP)
        try:
            self.assertEqual(self.redis("FCALL", "parley_revoke_session", "0", token), "1")
            c.send_json({"type": "message", "content": "after revocation", "client_msg_id": "late"})
            self.assertEqual(c.expect_close(timeout=T), (1008, "session revoked"))
            status, body = publish(self.p, token, "stop", "over HTTP")
            self.assertEqual((status, body["error"]["code"]), (401, "unauthorized"))
        finally:
            os.kill(bus, signal.SIGCONT)
        self.assertEqual(self.redis("EXISTS", "parley:room:stop:log"), "0")
        self.assertEqual(self.redis("EXISTS", "parley:dedup:quinn:late"), "0")

    def test_deleting_a_session_and_announcing_it(self):
        """Revoking by hand: DEL the session, then publish the event."""
        token = session(self.p, "kim")
        c = self.ws(token, "hand")
        self.redis("DEL", "parley:session:" + token)
        self.redis("PUBLISH", "parley:user:kim", 'revoked - kim\n{"type":"revoked","user":"kim"}')
        self.assertEqual(c.expect_close(timeout=T)[0], 1008)

    def test_revoked_while_the_connection_opens(self):
        """A revocation published before the user's channel is subscribed
        (the host's bus is held up here) still closes the connection."""
        token = session(self.p, "zara")
        bus = self.p.bus_pid()
        os.kill(bus, signal.SIGSTOP)
        try:
            c = WSClient.connect(self.p.port, "/ws/chat/race?token=" + token, timeout=T)
            self.clients.append(c)
            # The stream's 200 waits for its subscriptions (test_ws.
            # RedisDownAtJoin.test_a_stream_answers_once_it_hears_the_room).
            stream = SSEClient(self.p.port, "/api/rooms/race/events?token=" + token)
            self.clients.append(stream)
            time.sleep(0.2)
            self.assertEqual(self.redis("FCALL", "parley_revoke_session", "0", token), "1")
        finally:
            os.kill(bus, signal.SIGCONT)
        self.assertEqual(c.expect_close(timeout=T), (1008, "session revoked"))
        wait_for(lambda: stream.ended, T, what="the SSE stream to end")
        self.assertEqual(stream.status, 200)

    def test_revoked_while_the_bus_reconnects(self):
        """A revocation published while the host's subscriber connection is
        down (nobody receives it) still closes the connection once the bus
        is subscribed again."""
        token = session(self.p, "yves")
        c = self.ws(token, "gap")
        self.redis("CLIENT", "KILL", "TYPE", "pubsub")
        self.assertEqual(self.redis("FCALL", "parley_revoke_session", "0", token), "1")
        self.assertEqual(c.expect_close(timeout=T), (1008, "session revoked"))

    def test_connections_end_with_their_session(self):
        token = session(self.p, "leo", ttl=2)
        ends = time.time() + 2
        c = self.ws(token, "ends")
        stream = self.sse(token, "ends")
        self.assertEqual(c.expect_close(timeout=T), (1008, "token expired"))
        wait_for(lambda: stream.ended, T, what="the SSE stream to end")
        # Within a second or so of the end, not at the next heartbeat (15 s).
        self.assertLess(time.time() - ends, 2.0 * SLOW)


class TokenRefresh(AuthCase):
    """{"type":"auth"} over a WebSocket: a new token before the old one
    ends keeps the connection; a bad one is an error, not a close."""

    def test_a_refreshed_connection_outlives_its_first_token(self):
        c = self.ws(jwt("rita", 2), "refresh")
        c.send_json({"type": "auth", "token": jwt("rita", 60)})
        ok = c.recv_json(T, type="auth_ok")
        self.assertEqual(ok["user"], "rita")
        self.assertAlmostEqual(ok["expires"], time.time() + 60, delta=5)
        time.sleep(3 * SLOW)
        c.send_json({"type": "message", "content": "still here", "client_msg_id": "r1"})
        self.assertEqual(c.recv_json(T, type="ack")["client_msg_id"], "r1")
        # A session token works as well, and then its revocation ends the connection.
        token = session(self.p, "rita")
        c.send_json({"type": "auth", "token": token})
        self.assertEqual(c.recv_json(T, type="auth_ok")["user"], "rita")
        self.redis("FCALL", "parley_revoke_session", "0", token)
        self.assertEqual(c.expect_close(timeout=T), (1008, "session revoked"))

    def test_a_connection_not_refreshed_still_ends_at_exp(self):
        c = self.ws(jwt("rory", 2), "refresh2")
        self.assertEqual(c.expect_close(timeout=T), (1008, "token expired"))

    def test_a_bad_refresh_is_an_error_and_changes_nothing(self):
        c = self.ws(jwt("ruth", 3), "refresh3")
        bad = [({"type": "auth", "token": jwt("someone_else")}, "unauthorized", "another user"),
               ({"type": "auth", "token": jwt("ruth", -10)}, "unauthorized", "expired"),
               ({"type": "auth", "token": "x" * 43}, "unauthorized", "unknown or expired session"),
               ({"type": "auth", "token": "garbage"}, "unauthorized", "malformed"),
               ({"type": "auth", "token": jwt("ruth")[:-3] + "AAA"}, "unauthorized", "signature"),
               ({"type": "auth"}, "bad_request", "token"),
               ({"type": "auth", "token": 5}, "bad_request", "token"),
               ({"type": "auth", "token": "t" * 5000}, "bad_request", "token")]
        for doc, code, pattern in bad:
            c.send_json(doc)
            err = c.recv_json(T, type="error")
            self.assertEqual(err["code"], code, (doc, err))
            self.assertRegex(err["message"], pattern)
        # Still open, and still bound to the first token's end.
        c.send_json({"type": "typing"})
        self.assertEqual(c.expect_close(timeout=T), (1008, "token expired"))


class Tickets(AuthCase):
    """Single-use stand-ins for a token in URLs (WebSocket, event streams)."""

    def ticket(self, headers):
        status, rh, body = self.p.request("POST", "/api/tickets", headers=headers)
        self.assertEqual(status, 201, body)
        self.assertEqual(rh["cache-control"], "no-store")
        doc = json.loads(body)
        self.assertEqual(doc["expires_in"], 30)
        self.assertRegex(doc["ticket"], r"^[A-Za-z0-9_-]{43}$")
        return doc["ticket"]

    def test_a_ticket_opens_one_connection(self):
        token = session(self.p, "tina")
        ticket = self.ticket({"Authorization": "Bearer " + token})
        self.assertTrue(0 < int(self.redis("PTTL", "parley:ticket:" + ticket)) <= 30000)
        c = WSClient.connect(self.p.port, "/ws/chat/tix?ticket=" + ticket, timeout=T)
        self.clients.append(c)
        self.assertEqual(c.recv_json()["user"], "tina")
        # Used up: the same URL again is refused; so is a made-up ticket.
        self.assertEqual(handshake(self.p.port, "/ws/chat/tix?ticket=" + ticket).status, 401)
        self.assertEqual(handshake(self.p.port, "/ws/chat/tix?ticket=" + "B" * 43).status, 401)
        self.assertEqual(handshake(self.p.port, "/ws/chat/tix?ticket=short").status, 401)
        # The connection is the session's: revoking it closes the connection.
        self.redis("FCALL", "parley_revoke_session", "0", token)
        self.assertEqual(c.expect_close(timeout=T), (1008, "session revoked"))

    def test_tickets_for_streams_cookies_and_jwts(self):
        token = session(self.p, "uma")
        stream = self.sse_ticket(self.ticket({"Cookie": "parley_token=" + token}), "tix2")
        self.assertEqual(publish(self.p, token, "tix2", "seen")[0], 201)
        self.assertEqual(stream.wait_events(1, kind="message")[0]["json"]["content"], "seen")
        c = WSClient.connect(self.p.port, "/ws/chat/tix2?ticket=" + self.ticket({"Authorization": "Bearer " +
                                                                                jwt("vera", 2)}), timeout=T)
        self.clients.append(c)
        self.assertEqual(c.recv_json()["user"], "vera")
        self.assertEqual(c.expect_close(timeout=T), (1008, "token expired"))     # the JWT's exp still holds
        # A ticket wins over the page's cookie (another tab, another name).
        other = session(self.p, "wade")
        c = WSClient.connect(self.p.port, "/ws/chat/tix2?ticket=" + self.ticket({"Authorization": "Bearer " + other}),
                             headers={"Cookie": "parley_token=" + token}, timeout=T)
        self.clients.append(c)
        self.assertEqual(c.recv_json()["user"], "wade")

    def test_publishing_with_a_ticket_checks_its_session(self):
        """A publish with ?ticket= is checked against the ticket's session
        in the publish itself: a session that no longer names the ticket's
        user (changed behind parley's back) stores nothing."""
        token = session(self.p, "tess")
        ticket = self.ticket({"Authorization": "Bearer " + token})
        self.redis("HSET", "parley:session:" + token, "user", "someone")
        status, _, body = self.p.request("POST", "/api/rooms/tix4/messages?ticket=" + ticket,
                                         body=json.dumps({"content": "x"}),
                                         headers={"Content-Type": "application/json"})
        self.assertEqual((status, json.loads(body)["error"]["code"]), (401, "unauthorized"))
        self.assertEqual(self.redis("EXISTS", "parley:room:tix4:log"), "0")
        # With the session intact, a ticket publishes.
        token = session(self.p, "tess")
        ticket = self.ticket({"Authorization": "Bearer " + token})
        status, _, _ = self.p.request("POST", "/api/rooms/tix4/messages?ticket=" + ticket,
                                      body=json.dumps({"content": "y"}), headers={"Content-Type": "application/json"})
        self.assertEqual(status, 201)

    def test_a_revoked_sessions_ticket_is_refused(self):
        token = session(self.p, "xena")
        ticket = self.ticket({"Authorization": "Bearer " + token})
        self.redis("FCALL", "parley_revoke_session", "0", token)
        self.assertEqual(handshake(self.p.port, "/ws/chat/tix3?ticket=" + ticket).status, 401)
        self.assertEqual(self.p.request("POST", "/api/tickets")[0], 401)

    def test_no_token_or_ticket_in_the_log(self):
        token = session(self.p, "yuri")
        ticket = self.ticket({"Authorization": "Bearer " + token})
        self.ws(token, "logs")
        c = WSClient.connect(self.p.port, "/ws/chat/logs?ticket=" + ticket, timeout=T)
        self.clients.append(c)
        c.recv_json()
        self.sse(token, "logs")
        log = self.p.log()
        self.assertRegex(log, r"path=/ws/chat/logs status=101")
        self.assertNotIn(token, log)
        self.assertNotIn(ticket, log)

    def sse_ticket(self, ticket, room):
        c = SSEClient(self.p.port, "/api/rooms/%s/events?ticket=%s" % (room, ticket))
        self.clients.append(c)
        self.assertEqual(c.wait_ready(), 200)
        return c


class Origins(AuthCase):
    """allowed_origins empty (the default): same origin only."""

    def get(self, headers):
        token = session(self.p, "olga")
        h = {"Authorization": "Bearer " + token}
        h.update(headers)
        return self.p.request("GET", "/api/rooms/lobby/messages", headers=h)

    def test_same_origin_only(self):
        host = "127.0.0.1:%d" % self.p.port
        for origin in ("http://evil.example", "null", "http://127.0.0.1:1", "http://localhost:%d" % self.p.port):
            status, headers, _ = self.get({"Origin": origin, "Host": host})
            self.assertEqual(status, 403, origin)
            self.assertNotIn("access-control-allow-origin", headers)
        status, headers, _ = self.get({"Origin": "http://" + host, "Host": host})
        self.assertEqual(status, 200)
        self.assertNotIn("access-control-allow-credentials", headers)
        # The cookie of a visitor does not work from another site's page.
        token = session(self.p, "olga")
        status, _, _ = self.p.request("GET", "/api/rooms/lobby/messages",
                                      headers={"Origin": "http://evil.example", "Cookie": "parley_token=" + token})
        self.assertEqual(status, 403)
        status, _, _ = self.p.request("GET", "/api/rooms/lobby/messages",
                                      headers={"Origin": "http://" + host, "Host": host,
                                               "Cookie": "parley_token=" + token})
        self.assertEqual(status, 200)

    def test_shipped_configuration_is_closed(self):
        """etc/parley.conf as shipped: no open sign-in, same origin only."""
        sub = os.path.join(self.env.tmpdir, "shipped")
        os.makedirs(sub)
        p = harness.Parleyd(sub, args=["--listen", "127.0.0.1:0", "--redis", self.env.redis.url, "--workers", "1"])
        p.conf = os.path.join(TOP, "etc", "parley.conf")
        self.env.procs.append(p)
        p.start()
        status, _, body = p.request("POST", "/api/sessions", body='{"user":"mallory"}',
                                    headers={"Content-Type": "application/json"})
        self.assertEqual((status, json.loads(body)["error"]["code"]), (401, "unauthorized"))
        status, _, _ = p.request("GET", "/healthz", headers={"Origin": "https://evil.example"})
        self.assertEqual(status, 403)


class AnyOrigin(AuthCase):
    settings = {"allowed_origins": "*"}

    def test_star_never_with_credentials(self):
        token = session(self.p, "pete")
        status, headers, _ = self.p.request("GET", "/api/rooms/lobby/messages",
                                            headers={"Origin": "http://any.example", "Cookie": "parley_token=" + token})
        self.assertEqual(status, 401)           # the cookie does not count
        status, headers, _ = self.p.request("GET", "/api/rooms/lobby/messages",
                                            headers={"Origin": "http://any.example",
                                                     "Authorization": "Bearer " + token})
        self.assertEqual(status, 200)
        self.assertEqual(headers["access-control-allow-origin"], "*")
        self.assertNotIn("access-control-allow-credentials", headers)
        resp = handshake(self.p.port, "/ws/chat/lobby", headers={"Origin": "http://any.example",
                                                                  "Cookie": "parley_token=" + token})
        self.assertEqual(resp.status, 401)
        self.ws(token, "lobby", headers={"Origin": "http://any.example"})


class ListedOrigin(AuthCase):
    settings = {"allowed_origins": "https://app.example"}

    def test_listed_origin_with_credentials(self):
        token = session(self.p, "quinn")
        status, headers, _ = self.p.request("GET", "/api/rooms/lobby/messages",
                                            headers={"Origin": "https://app.example",
                                                     "Cookie": "parley_token=" + token})
        self.assertEqual(status, 200)
        self.assertEqual(headers["access-control-allow-origin"], "https://app.example")
        self.assertEqual(headers["access-control-allow-credentials"], "true")
        self.assertEqual(self.p.request("GET", "/api/rooms/lobby/messages",
                                        headers={"Origin": "https://evil.example",
                                                 "Cookie": "parley_token=" + token})[0], 403)


class RoomRetention(AuthCase):
    settings = {"room_ttl": "2s"}

    def test_idle_room_expires(self):
        token = session(self.p, "ruth")
        self.assertEqual(publish(self.p, token, "idle", "one")[0], 201)
        ttl = int(self.redis("PTTL", "parley:room:idle:log"))
        self.assertTrue(0 < ttl <= 2000, ttl)
        time.sleep(1.2)
        publish(self.p, token, "idle", "two")        # activity renews it
        self.assertGreater(int(self.redis("PTTL", "parley:room:idle:log")), 1500)
        wait_for(lambda: self.redis("EXISTS", "parley:room:idle:log") == "0", 5, interval=0.2,
                 what="the idle room to expire")
        status, _, body = self.p.request("GET", "/api/rooms/idle/messages",
                                         headers={"Authorization": "Bearer " + token})
        self.assertEqual((status, json.loads(body)["messages"]), (200, []))


class SessionKeyFromEnvironment(AuthCase):
    """session_key_env: the key comes from the variable it names, unlogged."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.key = "env-session-key-" + "9" * 40
        cls.p = cls.env.parleyd({"session_key_file": "", "session_key_env": "PARLEY_TEST_SESSION_KEY"},
                                env={"PARLEY_TEST_SESSION_KEY": cls.key})

    def test_key_from_the_environment(self):
        self.assert_error(self.sign_in("vera", headers=KEY), 401, "unauthorized")   # the file's key is not it
        got = self.sign_in("vera", headers={"Authorization": "Bearer " + self.key})
        self.assertEqual(got[0], 201, got)
        self.assertEqual(got[2]["user"], "vera")
        self.assertNotIn(self.key, self.p.log())
        self.assertRegex(self.p.log(), r"event=key_loaded key=session_key source=env set=yes")


class RoomsKeptForever(AuthCase):
    settings = {"room_ttl": "0"}

    def test_room_ttl_zero(self):
        self.assertEqual(publish(self.p, session(self.p, "sam"), "forever", "x")[0], 201)
        self.assertEqual(self.redis("TTL", "parley:room:forever:log"), "-1")


if __name__ == "__main__":
    unittest.main()
