"""Sessions, tokens, publishing and history over HTTP, on a real parleyd and
redis-server."""

import json
import time
import unittest

import harness
from harness import SLOW, Env, SSEClient, publish, redis_cli, session, wait_for
from wsclient import WSClient

SECRET = "test-secret-for-jwt"


def jwt(claims, secret=SECRET, alg="HS256", header=None):
    return harness.jwt(claims, secret, alg, header)


class Api(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.p = cls.env.parleyd({"workers": "2", "jwt_secret": SECRET, "session_ttl": "1h",
                                 "max_content": "100"})

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def post(self, path, body, headers=None, raw=False):
        h = {"Content-Type": "application/json"}
        if path == "/api/sessions":
            h["Authorization"] = "Bearer " + harness.SESSION_KEY    # as the application backend
        h.update(headers or {})
        status, headers, data = self.p.request("POST", path, body=body if raw else json.dumps(body), headers=h)
        return status, headers, json.loads(data) if data else None

    def assert_error(self, status, body, want, code):
        self.assertEqual(status, want, body)
        self.assertEqual(body["error"]["code"], code)

    def test_session_created_in_redis_with_ttl(self):
        key_header = {"Authorization": "Bearer " + harness.SESSION_KEY}
        status, headers, body = self.post("/api/sessions", {"user": "alice"}, headers=key_header)
        self.assertEqual(status, 201)
        self.assertEqual(headers["cache-control"], "no-store")
        self.assertEqual(body["user"], "alice")
        self.assertEqual(body["expires_in"], 3600)
        self.assertRegex(body["token"], r"^[A-Za-z0-9_-]{43}$")
        key = "parley:session:" + body["token"]
        self.assertEqual(redis_cli(self.env.redis, "HGET", key, "user"), "alice")
        self.assertEqual(redis_cli(self.env.redis, "HGET", key, "mode"), "key")
        self.assertEqual(redis_cli(self.env.redis, "HGET", key, "addr"), "127.0.0.1")
        created = int(redis_cli(self.env.redis, "HGET", key, "created_at"))
        expires = int(redis_cli(self.env.redis, "HGET", key, "expires_at"))
        self.assertEqual(expires - created, 3600 * 1000)
        self.assertTrue(3590 <= int(redis_cli(self.env.redis, "TTL", key)) <= 3600)
        # The user's index lists the session with its end as the score.
        index = "parley:user:alice:sessions"
        self.assertEqual(int(redis_cli(self.env.redis, "ZSCORE", index, body["token"])), expires)
        self.assertTrue(3590 <= int(redis_cli(self.env.redis, "TTL", index)) <= 3600)
        tokens = {self.post("/api/sessions", {"user": "alice"}, headers=key_header)[2]["token"] for _ in range(20)}
        self.assertEqual(len(tokens), 20)

    def test_session_bad_input(self):
        key_header = {"Authorization": "Bearer " + harness.SESSION_KEY}
        for user in ("", "a b", "x" * 65, "..", ".", "é", 5, None, "a\u0000b", "ab\u0000"):
            status, _, body = self.post("/api/sessions", {"user": user}, headers=key_header)
            self.assert_error(status, body, 400, "bad_request")
        for ttl in (0, -1, 1.5, "60", 365 * 86400 + 1, True):
            status, _, body = self.post("/api/sessions", {"user": "ttl", "ttl": ttl}, headers=key_header)
            self.assert_error(status, body, 400, "bad_request")
        status, _, body = self.post("/api/sessions", b"{not json", raw=True, headers=key_header)
        self.assert_error(status, body, 400, "invalid_json")
        status, _, body = self.post("/api/sessions", b'{"user":"a"} trailing', raw=True, headers=key_header)
        self.assert_error(status, body, 400, "invalid_json")
        status, _, body = self.post("/api/sessions", b'["alice"]', raw=True, headers=key_header)
        self.assert_error(status, body, 400, "invalid_json")
        status, _, body = self.post("/api/sessions", {"user": "alice"},
                                    headers=dict(key_header, **{"Content-Type": "text/plain"}))
        self.assert_error(status, body, 415, "unsupported_media_type")

    def test_revoked_session_is_refused(self):
        tok = session(self.p, "carol")
        self.assertEqual(publish(self.p, tok, "lobby", "hi")[0], 201)
        redis_cli(self.env.redis, "DEL", "parley:session:" + tok)
        status, body = publish(self.p, tok, "lobby", "hi")
        self.assert_error(status, body, 401, "unauthorized")

    def test_token_sources(self):
        tok = session(self.p, "dave")
        path = "/api/rooms/lobby/messages?limit=1"
        self.assertEqual(self.p.request("GET", path, headers={"Authorization": "Bearer " + tok})[0], 200)
        self.assertEqual(self.p.request("GET", path + "&token=" + tok)[0], 200)
        self.assertEqual(self.p.request("GET", path, headers={"Cookie": "a=b; parley_token=" + tok})[0], 200)
        status, headers, _ = self.p.request("GET", path)
        self.assertEqual(status, 401)
        self.assertEqual(headers["www-authenticate"], "Bearer")
        self.assertEqual(self.p.request("GET", path, headers={"Authorization": "Bearer " + "A" * 43})[0], 401)
        self.assertEqual(self.p.request("GET", path, headers={"Authorization": "Basic eDp5"})[0], 401)

    def test_jwt(self):
        now = int(time.time())
        good = jwt({"sub": "erin", "exp": now + 60})
        status, body = publish(self.p, good, "lobby", "signed")
        self.assertEqual(status, 201, body)
        _, _, hist = self.p.request("GET", "/api/rooms/lobby/messages?limit=1",
                                    headers={"Authorization": "Bearer " + good})
        self.assertEqual(json.loads(hist)["messages"][-1]["from"], "erin")
        for bad in (jwt({"sub": "erin", "exp": now - 1}),
                    jwt({"sub": "erin", "exp": now + 60}, secret="wrong"),
                    jwt({"sub": "erin", "exp": now + 60}, alg="HS512"),
                    jwt({"sub": "erin"}),
                    jwt({"sub": "bad name", "exp": now + 60}),
                    good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
                    "a.b.c"):
            status, body = publish(self.p, bad, "lobby", "x")
            self.assert_error(status, body, 401, "unauthorized")

    def test_jwt_crit_and_strict_json(self):
        now = int(time.time())
        claims = {"sub": "erin", "exp": now + 60}
        cases = [
            # RFC 7515 4.1.11: critical extensions must be understood, and
            # parley understands none.
            ({"alg": "HS256", "typ": "JWT", "crit": ["exp"]}, claims, "invalid token: unsupported crit header"),
            ({"alg": "HS256", "crit": ["example.com/ext"], "example.com/ext": True}, claims,
             "invalid token: unsupported crit header"),
            # Which "sub" (or "alg") would be meant is anyone's guess.
            (None, b'{"sub":"erin","sub":"zed","exp":%d}' % (now + 60), "invalid token: malformed"),
            (b'{"alg":"none","alg":"HS256"}', claims, "invalid token: malformed"),
            (None, b'{"sub":"erin","exp":%d,"n":NaN}' % (now + 60), "invalid token: malformed"),
            (None, b'{"sub":"erin","exp":%d,"s":"a\tb"}' % (now + 60), "invalid token: malformed"),
        ]
        for header, body, message in cases:
            status, doc = publish(self.p, jwt(body, header=header), "lobby", "x")
            self.assert_error(status, doc, 401, "unauthorized")
            self.assertEqual(doc["error"]["message"], message, (header, body))

    def assert_invalid_json(self, path, body, words, tok=None):
        """POSTs BODY (bytes) to PATH: 400 invalid_json, and the message
        says WORDS in the contract's language (never json-c's)."""
        status, _, doc = self.post(path, body, headers={"Authorization": "Bearer " + tok} if tok else None,
                                   raw=True)
        self.assert_error(status, doc, 400, "invalid_json")
        self.assertTrue(doc["error"]["message"].startswith("the body is not valid JSON: "), (body, doc))
        self.assertIn(words, doc["error"]["message"], body)

    # RFC 8259 exactly: what json-c alone would take is refused.

    def test_repeated_member_names_are_invalid_json(self):
        tok = session(self.p, "kim")
        self.assert_invalid_json("/api/sessions", b'{"user":"lena","user":"mona"}', "duplicate member name at offset 15")
        self.assert_invalid_json("/api/sessions", b'{"user":"lena","\\u0075ser":"mona"}', "duplicate member name")
        self.assert_invalid_json("/api/rooms/strict-dup/messages", b'{"content":"a","content":"b"}',
                                 "duplicate member name", tok)
        self.assertEqual(redis_cli(self.env.redis, "XLEN", "parley:room:strict-dup:log"), "0")

    def test_nan_and_infinity_are_invalid_json(self):
        tok = session(self.p, "kim")
        for word in (b"NaN", b"Infinity", b"-Infinity"):
            self.assert_invalid_json("/api/rooms/strict-nan/messages", b'{"content":"x","n":%s}' % word,
                                     "NaN and Infinity are not JSON numbers at offset 19", tok)
        self.assertEqual(redis_cli(self.env.redis, "XLEN", "parley:room:strict-nan:log"), "0")

    def test_raw_control_characters_are_invalid_json(self):
        tok = session(self.p, "kim")
        self.assert_invalid_json("/api/rooms/strict-ctl/messages", b'{"content":"line\nbreak"}',
                                 "unescaped control character in a string at offset 16", tok)
        for raw in (b"\t", b"\x00", b"\x1f"):
            self.assert_invalid_json("/api/rooms/strict-ctl/messages", b'{"content":"a%sb"}' % raw,
                                     "unescaped control character in a string at offset 13", tok)
        self.assertEqual(redis_cli(self.env.redis, "XLEN", "parley:room:strict-ctl:log"), "0")
        # Escaped, they are fine.
        status, doc = publish(self.p, tok, "strict-ctl", "line\nbreak\ttab")
        self.assertEqual(status, 201, doc)

    def test_invalid_json_is_explained_in_the_contracts_words(self):
        tok = session(self.p, "kim")
        for body, message in ((b"", "the body is empty; send a JSON object"),
                              (b" \r\n", "the body is empty; send a JSON object"),
                              (b'["alice"]', "the body must be a JSON object, not an array"),
                              (b'"alice"', "the body must be a JSON object, not a string"),
                              (b'{"user":', "the body is not valid JSON: the text ends inside the value at offset 8")):
            status, _, doc = self.post("/api/sessions", body, raw=True)
            self.assert_error(status, doc, 400, "invalid_json")
            self.assertEqual(doc["error"]["message"], message)
        for body, words in ((b'{"content":"\\ud800"}', "unpaired surrogate in a \\u escape"),
                            (b'{"content":"x","d":' + b"[" * 40 + b"]" * 40 + b"}", "nested more than 32 levels deep"),
                            (b'{"content":"x",}', "unexpected character at offset 15"),
                            (b'{"content":"\xc3"}', "invalid UTF-8 at offset 13"),
                            (b'{"content":01}', "malformed number at offset 11"),
                            (b'{"content":"\\x"}', "invalid escape in a string at offset 12")):
            self.assert_invalid_json("/api/rooms/strict/messages", body, words, tok)

    def test_history_bounds_nothing_can_pass(self):
        """Nothing is before 0-0 or after the largest id: an empty page, not
        503 (the outside audit)."""
        tok = session(self.p, "bounds")
        publish(self.p, tok, "bounds", "one")
        h = {"Authorization": "Bearer " + tok}
        for query in ("before=0-0", "before=00-0", "after=18446744073709551615-18446744073709551615"):
            status, _, body = self.p.request("GET", "/api/rooms/bounds/messages?" + query, headers=h)
            self.assertEqual((status, json.loads(body)), (200, {"messages": []}), query)
        ws = WSClient.connect(self.p.port, "/ws/chat/bounds?token=" + tok, timeout=10 * SLOW)
        self.addCleanup(ws.shutdown)
        ws.recv_json()
        ws.send_json({"type": "history", "before": "0-0"})
        self.assertEqual(ws.recv_json(type="history")["messages"], [])
        self.assertNotIn("event=script_failed", self.p.log())

    def test_publish_and_history(self):
        tok = session(self.p, "frank")
        ids = [publish(self.p, tok, "hist", "m%d" % i)[1]["id"] for i in range(10)]

        def history(query):
            status, _, body = self.p.request("GET", "/api/rooms/hist/messages" + query,
                                             headers={"Authorization": "Bearer " + tok})
            self.assertEqual(status, 200, body)
            return json.loads(body)["messages"]

        msgs = history("")
        self.assertEqual([m["id"] for m in msgs], ids)
        self.assertEqual(msgs[0], {"type": "message", "id": ids[0], "room": "hist", "from": "frank",
                                   "content": "m0", "ts": int(ids[0].split("-")[0])})
        self.assertEqual([m["id"] for m in history("?limit=3")], ids[-3:])
        self.assertEqual([m["id"] for m in history("?after=%s&limit=2" % ids[4])], ids[5:7])
        self.assertEqual([m["id"] for m in history("?before=%s&limit=2" % ids[4])], ids[2:4])
        self.assertEqual([m["id"] for m in history("?after=%s&before=%s" % (ids[1], ids[4]))], ids[2:4])
        self.assertEqual(len(history("?limit=5000")), 10)       # capped at 200, not refused
        for q in ("?limit=0", "?limit=x", "?after=abc", "?before=1-"):
            status, _, body = self.p.request("GET", "/api/rooms/hist/messages" + q,
                                             headers={"Authorization": "Bearer " + tok})
            self.assert_error(status, json.loads(body), 400, "bad_request")

    def test_idempotent_client_msg_id(self):
        tok = session(self.p, "gina")
        s1, b1 = publish(self.p, tok, "idem", "once", cmid="c-1")
        s2, b2 = publish(self.p, tok, "idem", "once again", cmid="c-1")
        self.assertEqual((s1, s2), (201, 201))
        self.assertEqual(b1["id"], b2["id"])
        self.assertEqual(redis_cli(self.env.redis, "XLEN", "parley:room:idem:log"), "1")
        # The same id from another user is another message.
        other = session(self.p, "hank")
        self.assertNotEqual(publish(self.p, other, "idem", "x", cmid="c-1")[1]["id"], b1["id"])
        # The limit is 128 bytes of UTF-8, as documented.
        self.assertEqual(publish(self.p, tok, "idem", "x", cmid="\u00fc" * 64)[0], 201)
        status, body = publish(self.p, tok, "idem", "x", cmid="\u00fc" * 65)
        self.assertEqual((status, body["error"]["code"]), (400, "bad_request"))
        self.assertIn("1..128 bytes", body["error"]["message"])

    def test_publish_bad_input(self):
        tok = session(self.p, "ivy")
        status, body = publish(self.p, tok, "lobby", "x" * 101)
        self.assert_error(status, body, 413, "too_large")
        for doc in ({"content": ""}, {"content": 5}, {}, {"content": "x", "client_msg_id": 7},
                    {"content": "a\u0000b"}, {"content": "x", "client_msg_id": "c\u0000"}):
            status, _, body = self.post("/api/rooms/lobby/messages", doc, headers={"Authorization": "Bearer " + tok})
            self.assert_error(status, body, 400, "bad_request")
        status, _, body = self.post("/api/rooms/lobby/messages", b'{"content":"\xff"}', raw=True,
                                    headers={"Authorization": "Bearer " + tok})
        self.assert_error(status, body, 400, "invalid_json")
        for room in ("a%20b", "..", "x" * 65, "%2e"):
            status, _, body = self.post("/api/rooms/%s/messages" % room, {"content": "x"},
                                        headers={"Authorization": "Bearer " + tok})
            self.assert_error(status, body, 400, "bad_request")
        status, _, _ = self.p.request("GET", "/api/rooms//messages")
        self.assertEqual(status, 404)

    def test_malformed_history_entry_is_skipped(self):
        tok = session(self.p, "jack")
        good = publish(self.p, tok, "edited", "fine")[1]["id"]
        redis_cli(self.env.redis, "XADD", "parley:room:edited:log", "*", "garbage", "1")
        redis_cli(self.env.redis, "XADD", "parley:room:edited:log", "*", "from", "bad name", "content", "x")
        status, _, body = self.p.request("GET", "/api/rooms/edited/messages?token=" + tok)
        self.assertEqual(status, 200)
        self.assertEqual([m["id"] for m in json.loads(body)["messages"]], [good])
        self.assertEqual(self.p.get_json("/healthz")[0], 200)

    def test_sse_resume_and_reset(self):
        tok = session(self.p, "kim")
        ids = [publish(self.p, tok, "resume", "r%d" % i)[1]["id"] for i in range(6)]
        c = SSEClient(self.p.port, "/api/rooms/resume/events?token=" + tok, headers={"Last-Event-ID": ids[2]})
        self.addCleanup(c.close)
        self.assertEqual(c.wait_ready(), 200)
        self.assertEqual(c.headers["content-type"], "text/event-stream")
        self.assertEqual(c.headers["cache-control"], "no-cache")
        self.assertEqual(c.headers["x-accel-buffering"], "no")
        got = c.wait_events(3, kind="message")
        self.assertEqual([e["id"] for e in got], ids[3:])
        self.assertEqual(c.retry, 2000)
        later = publish(self.p, tok, "resume", "live")[1]["id"]
        self.assertEqual(c.wait_events(4, kind="message")[3]["id"], later)
        # Unknown, malformed or out-of-range ids: a reset naming the oldest
        # kept id, then live.
        for bad in ("1-0", "garbage", "18446744073709551616-0", "1-" + "1" * 40):
            r = SSEClient(self.p.port, "/api/rooms/resume/events?token=%s&last_event_id=%s" % (tok, bad))
            self.addCleanup(r.close)
            reset = r.wait_events(1, kind="reset")[0]
            self.assertEqual(reset["json"], {"type": "reset", "oldest": ids[0]}, bad)
            self.assertNotIn("id", reset)
        # The header's surrounding blanks are not part of the id.
        r = SSEClient(self.p.port, "/api/rooms/resume/events?token=" + tok, headers={"Last-Event-ID": " %s " % ids[4]})
        self.addCleanup(r.close)
        self.assertEqual([e["id"] for e in r.wait_events(2, kind="message")], [ids[5], later])
        self.assertFalse([e for e in r.events if e.get("event") == "reset"])
        # An out-of-range id in history is a bad request, not a Redis failure.
        for q in ("after", "before"):
            status, _, body = self.p.request("GET", "/api/rooms/resume/messages?%s=18446744073709551616-0&token=%s"
                                             % (q, tok))
            self.assertEqual((status, json.loads(body)["error"]["code"]), (400, "bad_request"), q)

    def test_http_publish_rate_limited_per_user(self):
        env = Env()
        self.addCleanup(env.close)
        # Two workers, and a new connection per request: the bucket is the
        # user's in Redis, whichever worker (or host) takes the request.
        p = env.parleyd({"workers": "2", "rate_limit": "2", "rate_burst": "3"})
        tok = session(p, "lim")
        codes = [publish(p, tok, "lobby", "m%d" % i)[0] for i in range(5)]
        self.assertEqual(codes[:3], [201, 201, 201])
        status, headers, body = p.request("POST", "/api/rooms/lobby/messages",
                                          body=json.dumps({"content": "x"}),
                                          headers={"Content-Type": "application/json",
                                                   "Authorization": "Bearer " + tok})
        self.assertEqual(status, 429)
        self.assertEqual(json.loads(body)["error"]["code"], "rate_limited")
        self.assertIn(headers["retry-after"], ("1", "2"))
        # Another user is not affected.
        self.assertEqual(publish(p, session(p, "other"), "lobby", "x")[0], 201)
        self.assertEqual(redis_cli(env.redis, "EXISTS", "parley:rate:lim"), "1")

    def test_chat_stream_builtin_agent(self):
        tok = session(self.p, "lena")
        c = SSEClient(self.p.port, "/api/chat/stream?query=" + "say+hello+world" + "&token=" + tok)
        self.addCleanup(c.close)
        self.assertEqual(c.wait_ready(), 200)
        self.assertEqual(c.headers["content-type"], "text/event-stream")
        done = c.wait_events(1, kind="ai_done")[0]["json"]
        self.assertEqual((done["content"], done["done"]), ("", True))
        chunks = [e["json"] for e in c.events if e.get("event") == "ai_chunk"]
        self.assertEqual("".join(d["content"] for d in chunks), "You said: say hello world")
        self.assertTrue(all(d["done"] is False and isinstance(d["timestamp"], int) for d in chunks))
        self.assertEqual(c.events[-1].get("event"), "ai_done")
        wait_for(lambda: c.ended, what="the stream to end")
        # Knows the room when given one.
        publish(self.p, tok, "agentroom", "we meet at noon")
        c2 = SSEClient(self.p.port, "/api/chat/stream?room=agentroom&query=summary&token=" + tok)
        self.addCleanup(c2.close)
        c2.wait_events(1, kind="ai_done")
        text = "".join(e["json"]["content"] for e in c2.events if e.get("event") == "ai_chunk")
        self.assertIn('lena said "we meet at noon"', text)

    def test_chat_stream_errors(self):
        tok = session(self.p, "mona")
        self.assertEqual(self.p.request("GET", "/api/chat/stream?token=" + tok)[0], 400)
        self.assertEqual(self.p.request("GET", "/api/chat/stream?query=&token=" + tok)[0], 400)
        self.assertEqual(self.p.request("GET", "/api/chat/stream?query=x&room=a%20b&token=" + tok)[0], 400)
        self.assertEqual(self.p.request("GET", "/api/chat/stream?query=x")[0], 401)
        self.assertEqual(self.p.request("GET", "/api/chat/stream?query=%ff%fe&token=" + tok)[0], 400)
        # The question is content: max_content (100 here) bytes at most.
        status, _, body = self.p.request("GET", "/api/chat/stream?query=%s&token=%s" % ("q" * 101, tok))
        self.assertEqual((status, json.loads(body)["error"]["code"]), (413, "too_large"))
        status, headers, _ = self.p.request("GET", "/api/chat/stream?query=%s&token=%s" % ("q" * 100, tok))
        self.assertEqual((status, headers["content-type"]), (200, "text/event-stream"))

    def test_chat_stream_client_leaving_cancels(self):
        # agent_linger = 0: the answer stops as its stream closes (else it
        # lingers, and the fifth question would pass agent_max_per_user).
        env = Env()
        self.addCleanup(env.close)
        p = env.parleyd({"workers": "1", "agent_delay": "200ms", "agent_linger": "0"})
        tok = session(p, "nina")
        for _ in range(5):
            c = SSEClient(p.port, "/api/chat/stream?query=" + "+".join(["word"] * 50) + "&token=" + tok)
            c.wait_events(1, kind="ai_chunk")
            c.close()
        time.sleep(0.5)
        self.assertEqual(p.get_json("/healthz")[0], 200)
        _, _, body = p.request("GET", "/metrics")
        self.assertIn('parley_connections{transport="sse"} 0', body.decode())

    def test_sse_requires_token(self):
        c = SSEClient(self.p.port, "/api/rooms/lobby/events")
        self.addCleanup(c.close)
        self.assertEqual(c.wait_ready(), 401)


class SlowSSE(unittest.TestCase):
    def test_sse_client_that_stops_reading_is_cut_off(self):
        import socket
        env = Env()
        self.addCleanup(env.close)
        p = env.parleyd({"workers": "1", "sse_max_backlog": "16k"})
        tok = session(p, "sloth")
        good = SSEClient(p.port, "/api/rooms/slow/events?token=" + tok)
        self.addCleanup(good.close)
        good.wait_ready()
        # A stream nobody reads: a tiny receive buffer, never read from.
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", p.port))
        self.addCleanup(s.close)
        s.sendall(("GET /api/rooms/slow/events?token=%s HTTP/1.1\r\nHost: x\r\n\r\n" % tok).encode())
        wait_for(lambda: 'parley_connections{transport="sse"} 2' in p.request("GET", "/metrics")[2].decode(),
                 what="two streams open")
        ids = [publish(p, tok, "slow", "%04d" % i + "x" * 1020)[1]["id"] for i in range(400)]
        wait_for(lambda: "parley_slow_consumers_closed_total 1" in p.request("GET", "/metrics")[2].decode(),
                 timeout=10, what="the slow stream cut off")
        self.assertIn("event=slow_consumer transport=sse", p.log())
        # The other stream got everything, in order.
        self.assertEqual([e["id"] for e in good.wait_events(400, kind="message")], ids)


if __name__ == "__main__":
    unittest.main()
