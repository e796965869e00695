"""The openai agent backend against a fake OpenAI-compatible upstream
(fakeai.py), on real parleyd processes and a real redis-server: the answer
streamed over /api/chat/stream and to a room over WebSocket, the request
parleyd sends (model, stream, system prompt, room context, bearer key),
upstream failures and timeouts, cancellation (the asker leaving an SSE
answer, the asker cancelling a room's answer),
agent_busy, the key kept out of the log and /metrics, and the
configuration checks."""

import json
import os
import re
import socket
import time
import unittest
import urllib.parse

from fakeai import ANSWER, ANSWER_PIECES, ERROR_MESSAGE, FakeAI
from harness import SLOW, Env, SSEClient, publish, run_parleyd, session, wait_for
from wsclient import WSClient

KEY = "sk-test-4f3c2b1a0987654321"
PROMPT = "You are the test agent."
T = 5.0 * SLOW


def closed_port():
    """A local port nobody listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def black_hole():
    """A listening socket whose accept queue is full, so that the kernel
    drops new connection attempts and connect() hangs: (sockets, port)."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    port = hole.getsockname()[1]
    socks = [hole]
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks, port


class Agent(unittest.TestCase):
    """Four instances on one Redis and one fake upstream: P (the main one),
    BUSY (agent_max_concurrent = 1, the upstream named "localhost" with a
    "/v1/" suffix), DOWN (nothing listens at agent_url) and UNANSWERED
    (connecting to agent_url never completes)."""

    _counter = 0

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeAI()
        cls.hole, hole_port = black_hole()
        cls.env = Env()
        try:
            keyfile = os.path.join(cls.env.tmpdir, "agent.key")
            with open(keyfile, "w") as f:
                f.write("  " + KEY + "\n")
            base = {"workers": "1", "log_level": "debug", "agent": "openai", "agent_url": cls.fake.url,
                    "agent_model": "test-model", "agent_api_key_file": keyfile,
                    "agent_system_prompt": PROMPT, "agent_context_messages": "3",
                    "agent_connect_timeout": "1s", "agent_first_token_timeout": "500ms",
                    "agent_total_timeout": "1s", "agent_coalesce": "0"}
            cls.p = cls.env.parleyd(base, env={"PARLEY_AGENT_API_KEY": "env-key-loses-to-the-file"})
            cls.busy = cls.env.parleyd(dict(base, agent_url="http://localhost:%d/v1/" % cls.fake.port,
                                            agent_max_concurrent="1", agent_total_timeout="20s"))
            cls.down = cls.env.parleyd(dict(base, agent_url="http://127.0.0.1:%d" % closed_port()))
            cls.unanswered = cls.env.parleyd(dict(base, agent_url="http://127.0.0.1:%d" % hole_port,
                                                  agent_connect_timeout="300ms"))
        except BaseException:
            cls.tearDownClass()
            raise
        cls.tokens = {}

    @classmethod
    def tearDownClass(cls):
        try:
            cls.env.close()
        finally:
            cls.fake.close()
            for s in cls.hole:
                s.close()

    def setUp(self):
        Agent._counter += 1
        self.n = Agent._counter
        self.clients = []
        self.addCleanup(self._close_clients)

    def _close_clients(self):
        for c in self.clients:
            if isinstance(c, SSEClient):
                c.close()
            else:
                c.shutdown()

    def name(self, base):
        return "%s%d" % (base, self.n)

    def token(self, user, p=None):
        p = p or self.p
        if (p, user) not in self.tokens:
            self.tokens[(p, user)] = session(p, user)
        return self.tokens[(p, user)]

    # --- asking ------------------------------------------------------------

    def sse_ask(self, query, p=None, room=None):
        """Starts GET /api/chat/stream; returns the SSEClient."""
        p = p or self.p
        path = "/api/chat/stream?query=%s&token=%s" % (urllib.parse.quote(query), self.token("sse", p))
        if room:
            path += "&room=" + room
        c = SSEClient(p.port, path, timeout=T)
        self.clients.append(c)
        return c

    def sse_answer(self, query, p=None):
        """Asks over SSE and waits for the end of the response: returns
        (chunk contents, the last event)."""
        c = self.sse_ask(query, p)
        wait_for(lambda: c.ended, T, what="the end of the answer")
        self.assertEqual(c.status, 200)
        self.assertTrue(c.events, "no events")
        *chunks, last = c.events
        for e in chunks:
            self.assertEqual(e["event"], "ai_chunk", c.events)
            self.assertEqual(set(e["json"]), {"content", "done", "timestamp", "request_id"})
            self.assertEqual(e["id"], "%s/%s" % (e["json"]["request_id"], e["id"].split("/")[1]))
            self.assertFalse(e["json"]["done"])
        return [e["json"]["content"] for e in chunks], last

    def assert_sse_error(self, query, code, pattern, p=None):
        _, last = self.sse_answer(query, p)
        self.assertEqual(last["event"], "error", last)
        self.assertEqual(last["json"]["type"], "error")
        self.assertEqual(last["json"]["code"], code, last)
        self.assertRegex(last["json"]["message"], pattern)
        return last["json"]["message"]

    def connect(self, user, room, p=None):
        p = p or self.p
        c = WSClient.connect(p.port, "/ws/chat/%s?token=%s" % (room, self.token(user, p)), timeout=T)
        self.clients.append(c)
        self.assertEqual(c.recv_json()["type"], "welcome")
        return c

    def ws_answer(self, c):
        """The ai_chunks up to ai_done, and ai_done; an error (to the
        asker, in no set order with the room's events) is kept in
        self.ws_error."""
        chunks, self.ws_error, self.ws_chunks = [], None, []
        while True:
            doc = c.recv_json(T)
            if doc["type"] == "ai_chunk":
                chunks.append(doc)
                self.ws_chunks = chunks
            elif doc["type"] == "error":
                self.ws_error = doc
            elif doc["type"] == "ai_done":
                return chunks, doc

    def assert_ws_error(self, c, query, code, pattern):
        """The asker hears why; the room sees the answer end incomplete."""
        c.send_json({"type": "ask", "content": query})
        _, done = self.ws_answer(c)
        self.assertEqual(done["status"], "incomplete", done)
        err = self.ws_error or c.recv_json(T, type="error")
        self.assertEqual(err.get("code"), code, err)
        self.assertRegex(err["message"], pattern)
        return err

    def still_open(self, c):
        """The WebSocket still carries chat after an agent error."""
        marker = "still-open-%d-%f" % (self.n, time.monotonic())
        c.send_json({"type": "message", "content": marker, "client_msg_id": marker})
        c.recv_until(lambda d: d.get("type") == "message" and d.get("content") == marker)

    # --- the answer ----------------------------------------------------------

    def test_sse_streams_the_answer_and_sends_the_request_right(self):
        query = "[ok] what do you say? %d" % self.n
        chunks, last = self.sse_answer(query)
        self.assertEqual(chunks, ANSWER_PIECES)         # the role-only delta is not a chunk
        self.assertEqual(last["event"], "ai_done")
        self.assertEqual((last["json"]["content"], last["json"]["done"]), ("", True))
        req = self.fake.wait_request(query)
        self.assertEqual(req["path"], "/v1/chat/completions")
        self.assertEqual(req["headers"]["authorization"], "Bearer " + KEY)    # the file wins
        self.assertEqual(req["headers"]["content-type"], "application/json")
        self.assertEqual(req["headers"]["host"], "127.0.0.1:%d" % self.fake.port)
        self.assertEqual(req["body"], {"model": "test-model", "stream": True,
                                       "messages": [{"role": "system", "content": PROMPT},
                                                    {"role": "user", "content": query}]})

    def test_sse_every_body_shape(self):
        # CRLF a few bytes at a time, close-delimited without [DONE],
        # Content-Length, and a completion that is not streamed at all.
        for mode in ("crlf", "close", "length", "json"):
            chunks, last = self.sse_answer("[%s] shape %d" % (mode, self.n))
            self.assertEqual("".join(chunks), ANSWER, mode)
            self.assertEqual(last["event"], "ai_done", (mode, last))

    def test_ws_ask_streams_to_the_room_is_stored_and_sends_context(self):
        room, alice, bob = self.name("airoom"), self.name("alice"), self.name("bob")
        a = self.connect(alice, room)
        b = self.connect(bob, room)
        tok = self.token(alice)
        self.assertEqual(publish(self.p, tok, room, "first")[0], 201)
        self.assertEqual(publish(self.p, tok, room, "second")[0], 201)
        query = "[ok] in the room %d" % self.n
        a.send_json({"type": "ask", "content": query})
        for c in (a, b):
            chunks, done = self.ws_answer(c)
            self.assertEqual(done["type"], "ai_done", done)
            self.assertEqual([d["content"] for d in chunks], ANSWER_PIECES)
            self.assertEqual({d["request_id"] for d in chunks}, {done["request_id"]})
        _, _, body = self.p.request("GET", "/api/rooms/%s/messages?token=%s" % (room, tok))
        last = json.loads(body)["messages"][-1]
        self.assertEqual((last["id"], last["from"], last["content"]), (done["id"], "agent", ANSWER))
        sent = self.fake.wait_request(query)["body"]["messages"]
        self.assertEqual(sent, [{"role": "system", "content": PROMPT},
                                {"role": "user", "content": alice + ": first"},
                                {"role": "user", "content": alice + ": second"},
                                {"role": "user", "content": query}])
        # The stored answer is context for the next question, as the
        # agent's own turn; agent_context_messages = 3 keeps the last three.
        query2 = "[ok] and again %d" % self.n
        a.send_json({"type": "ask", "content": query2})
        self.assertEqual(self.ws_answer(a)[1]["type"], "ai_done")
        sent = self.fake.wait_request(query2)["body"]["messages"]
        self.assertEqual(sent[1:], [{"role": "user", "content": alice + ": first"},
                                    {"role": "user", "content": alice + ": second"},
                                    {"role": "assistant", "content": ANSWER},
                                    {"role": "user", "content": query2}])

    # --- failures ----------------------------------------------------------

    def test_upstream_500_is_agent_unavailable_with_its_message(self):
        self.assert_sse_error("[error500] sse %d" % self.n, "agent_unavailable",
                              r"HTTP 500: " + re.escape(ERROR_MESSAGE))
        c = self.connect(self.name("erin"), self.name("errroom"))
        self.assert_ws_error(c, "[error500] ws %d" % self.n, "agent_unavailable", r"HTTP 500")
        self.still_open(c)
        # A long message is cut at 300 bytes, not inside a character.
        message = self.assert_sse_error("[errorlong] %d" % self.n, "agent_unavailable", r"HTTP 500")
        self.assertEqual(message, "the agent answered HTTP 500: x" + "\u00e9" * 149)

    def test_garbage_is_agent_unavailable(self):
        self.assert_sse_error("[malformed] %d" % self.n, "agent_unavailable", r"not a JSON object")
        self.assert_sse_error("[nochoices] %d" % self.n, "agent_unavailable", r"without choices")
        c = self.connect(self.name("gary"), self.name("garbage"))
        self.assert_ws_error(c, "[malformed] ws %d" % self.n, "agent_unavailable", r"not a JSON object")

    def test_chunks_framed_by_bare_lf_are_agent_unavailable(self):
        # The chunked body goes through the strict decoder requests use
        # (http_chunked.c): each chunk line ends in CRLF.
        chunks, last = self.sse_answer("[lfchunks] %d" % self.n)
        self.assertEqual(chunks, [])
        self.assertEqual((last["event"], last["json"]["code"]), ("error", "agent_unavailable"), last)
        self.assertEqual(last["json"]["message"],
                         "the agent sent a malformed chunked body: malformed chunk line (RFC 9112 7.1)")

    def test_bytes_that_are_not_utf8_never_reach_a_client(self):
        # wsclient fails on a text frame that is not UTF-8.
        c = self.connect(self.name("bea"), self.name("bytes"))
        err = self.assert_ws_error(c, "[badbytes] %d" % self.n, "agent_unavailable", "bad")
        self.assertEqual("".join(d["content"] for d in self.ws_chunks), "Hellocaf? ?")
        self.assertEqual(err["message"], "the agent reported an error: bad ?? bytes,  'quoted'")
        self.still_open(c)

    def test_closed_mid_stream_is_agent_unavailable(self):
        self.assert_sse_error("[cut] %d" % self.n, "agent_unavailable", r"middle of the answer")

    def test_stall_is_agent_timeout_and_the_worker_keeps_serving(self):
        before = self.fake.disconnects.count("stall")
        started = time.monotonic()
        c = self.sse_ask("[stall] %d" % self.n)
        c.wait_events(1, T, kind="ai_chunk")
        while not c.closed and time.monotonic() - started < T:
            t0 = time.monotonic()
            status, _, _ = self.p.request("GET", "/healthz", timeout=T)
            self.assertEqual(status, 200)
            self.assertLess(time.monotonic() - t0, 0.5 * SLOW)
            time.sleep(0.05)
        wait_for(lambda: c.ended, T, what="the end of the answer")
        last = c.events[-1]
        self.assertEqual((last["event"], last["json"]["code"]), ("error", "agent_timeout"), last)
        self.assertRegex(last["json"]["message"], r"did not finish its answer within 1000 ms")
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        self.fake.wait_disconnects("stall", before + 1, T)     # the upstream was let go

    def test_no_first_token_is_agent_timeout(self):
        c = self.connect(self.name("tina"), self.name("timeout"))
        started = time.monotonic()
        self.assert_ws_error(c, "[stallstart] %d" % self.n, "agent_timeout", r"did not start answering within 500 ms")
        self.assertGreaterEqual(time.monotonic() - started, 0.45)
        self.still_open(c)

    def test_unreachable_upstream_is_agent_unavailable(self):
        self.assert_sse_error("[ok] %d" % self.n, "agent_unavailable",
                              r"cannot connect to the agent at 127\.0\.0\.1:\d+: Connection refused", p=self.down)
        c = self.connect(self.name("una"), self.name("down"), p=self.down)
        self.assert_ws_error(c, "[ok] ws %d" % self.n, "agent_unavailable", r"cannot connect")

    def test_connect_timeout_is_agent_timeout(self):
        started = time.monotonic()
        self.assert_sse_error("[ok] %d" % self.n, "agent_timeout",
                              r"could not connect to the agent at 127\.0\.0\.1:\d+ within 300 ms", p=self.unanswered)
        self.assertGreaterEqual(time.monotonic() - started, 0.28)

    # --- cancellation, limits, the key ----------------------------------------

    def test_asker_cancelling_closes_the_upstream_connection(self):
        before = self.fake.disconnects.count("slow")
        c = self.sse_ask("[slow] sse %d" % self.n)
        c.wait_events(2, T, kind="ai_chunk")
        c.close()
        self.fake.wait_disconnects("slow", before + 1, T)
        # A room's answer goes on without its asker (busy: 20 s in all)...
        room = self.name("leaving")
        w = self.connect(self.name("walt"), room, p=self.busy)
        w.send_json({"type": "ask", "content": "[slow] ws %d" % self.n})
        rid = w.recv_json(T, type="ai_chunk")["request_id"]
        w.shutdown()
        time.sleep(0.3 * SLOW)
        self.assertEqual(self.fake.disconnects.count("slow"), before + 1)
        # ... until the asker stops it, from another connection.
        w = self.connect(self.name("walt"), room, p=self.busy)
        w.send_json({"type": "cancel", "request_id": rid})
        self.assertEqual(w.recv_json(T, type="ai_done")["status"], "cancelled")
        self.fake.wait_disconnects("slow", before + 2, T)

    def test_busy_beyond_agent_max_concurrent(self):
        # BUSY reaches the fake as "localhost" (resolved without blocking,
        # each address tried in turn) with "/v1/" in agent_url.
        room = self.name("busy")
        a = self.connect(self.name("ann"), room, p=self.busy)
        b = self.connect(self.name("ben"), room, p=self.busy)
        query = "[slow] hold the slot %d" % self.n
        a.send_json({"type": "ask", "content": query})
        a.recv_json(T, type="ai_chunk")
        self.assertEqual(self.fake.wait_request(query)["path"], "/v1/chat/completions")
        b.send_json({"type": "ask", "content": "[ok] me too %d" % self.n})
        err = b.recv_json(T, type="error")
        self.assertEqual(err["code"], "agent_busy", err)
        path = "/api/chat/stream?query=x&token=" + self.token("sse", self.busy)
        status, _, body = self.busy.request("GET", path)
        self.assertEqual(status, 503)
        self.assertEqual(json.loads(body)["error"]["code"], "agent_busy")
        metrics = self.busy.request("GET", "/metrics")[2].decode()
        self.assertRegex(metrics, r"parley_agent_busy_total [2-9]")
        self.assertRegex(metrics, r"parley_agent_requests_total [1-9]")
        # The asker stops its answer: the slot is free again.
        a.send_json({"type": "cancel", "request_id": a.recv_json(T, type="ai_chunk")["request_id"]})

        self.assertEqual(b.recv_json(T, type="ai_done")["status"], "cancelled")

        def answered():
            b.send_json({"type": "ask", "content": "[ok] now %d" % self.n})
            doc = b.recv_until(lambda d: d["type"] in ("error", "ai_chunk"), T)[-1]
            return doc["type"] == "ai_chunk" and self.ws_answer(b)[1]["status"] == "complete"
        wait_for(answered, T, interval=0.05, what="a free slot")

    def test_key_never_in_the_log_or_metrics(self):
        message = self.assert_sse_error("[error401] %d" % self.n, "agent_unavailable", r"HTTP 401")
        self.assertNotIn(KEY, message)
        self.assertIn("*" * len(KEY), message)
        self.assertEqual(self.fake.wait_request("[error401] %d" % self.n)["headers"]["authorization"],
                         "Bearer " + KEY)
        _, _, metrics = self.p.request("GET", "/metrics")
        for p in (self.p, self.busy, self.down, self.unanswered):
            self.assertNotIn(KEY, p.log())
            self.assertNotIn(KEY[3:], p.log())
        self.assertNotIn(KEY, metrics.decode())
        self.assertRegex(self.p.log(), r"event=key_loaded key=agent_api_key source=file set=yes")


class SseAgent(unittest.TestCase):
    """agent = sse: a service that streams ai_chunk events (the fake's GET
    /chat/stream), behind a room's answers and /api/chat/stream."""

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeAI()
        cls.env = Env()
        try:
            keyfile = os.path.join(cls.env.tmpdir, "agent.key")
            with open(keyfile, "w") as f:
                f.write(KEY + "\n")
            cls.p = cls.env.parleyd({
                "workers": "1", "agent": "sse", "agent_api_key_file": keyfile, "agent_coalesce": "0",
                "agent_url": cls.fake.url + "/chat/stream?query={query}&room={room}&user={user}",
                "agent_first_token_timeout": "500ms", "agent_total_timeout": "1s"})
        except BaseException:
            cls.env.close()
            cls.fake.close()
            raise
        cls.token = session(cls.p, "sam")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.env.close()
        finally:
            cls.fake.close()

    def ws(self, room):
        c = WSClient.connect(self.p.port, "/ws/chat/%s?token=%s" % (room, self.token), timeout=T)
        self.addCleanup(c.shutdown)
        self.assertEqual(c.recv_json()["type"], "welcome")
        return c

    def ask(self, c, query):
        """(chunks, ai_done, the error to the asker or None)."""
        c.send_json({"type": "ask", "content": query})
        chunks, err = [], None
        while True:
            d = c.recv_json(T)
            if d["type"] == "ai_chunk":
                chunks.append(d["content"])
            elif d["type"] == "error":
                err = d
            elif d["type"] == "ai_done":
                if err is None and d["status"] != "complete":
                    err = c.recv_json(T, type="error")
                return chunks, d, err

    def test_a_room_answer_from_the_service(self):
        c = self.ws("sseroom")
        query = "what's up? [ok] & more"
        chunks, done, err = self.ask(c, query)
        self.assertEqual((chunks, done["status"], err), (ANSWER_PIECES, "complete", None))
        req = self.fake.wait_request(query)
        self.assertEqual(req["path"], "/chat/stream")
        self.assertEqual(req["query"], {"query": query, "room": "sseroom", "user": "sam"})
        self.assertEqual(req["headers"]["authorization"], "Bearer " + KEY)
        self.assertEqual(req["headers"]["accept"], "text/event-stream")
        _, _, body = self.p.request("GET", "/api/rooms/sseroom/messages?token=" + self.token)
        self.assertEqual(json.loads(body)["messages"][-1]["content"], ANSWER)

    def test_the_answer_stream_from_the_service(self):
        s = SSEClient(self.p.port, "/api/chat/stream?query=hi%20%5Bok%5D&token=" + self.token, timeout=T)
        self.addCleanup(s.close)
        wait_for(lambda: s.ended, T, what="the end of the answer")
        self.assertEqual([e["json"]["content"] for e in s.events[:-1]], ANSWER_PIECES)
        self.assertEqual(s.events[-1]["event"], "ai_done")
        self.assertEqual(self.fake.wait_request("hi [ok]")["query"]["room"], "")

    def test_failures_end_the_answer_incomplete_with_a_reason(self):
        c = self.ws("ssefail")
        for tag, code, pattern in (("error500", "agent_unavailable", r"HTTP 500"),
                                   ("malformed", "agent_unavailable", r"not a JSON object"),
                                   ("stall", "agent_timeout", r"did not finish its answer within 1000 ms"),
                                   ("cut", "agent_unavailable", r"middle of the answer"),
                                   ("nodone", "agent_unavailable", r"ended before it was complete")):
            with self.subTest(tag=tag):
                chunks, done, err = self.ask(c, "[%s] please" % tag)
                self.assertEqual(done["status"], "incomplete", done)
                self.assertEqual(err["code"], code, err)
                self.assertRegex(err["message"], pattern)


class AgentRate(unittest.TestCase):
    """Asking over HTTP costs a message of the asker's rate, like publishing
    (the outside audit ran 200 answers at once for one user)."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.p = cls.env.parleyd({"workers": "2", "rate_limit": "1", "rate_burst": "3", "agent_delay": "0"})

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_questions_are_rate_limited_per_user(self):
        token = session(self.p, "asker")
        path = "/api/chat/stream?query=help&token=" + token
        statuses = [self.p.request("GET", path) for _ in range(4)]
        self.assertEqual([st for st, _, _ in statuses[:3]], [200, 200, 200])
        status, headers, body = statuses[3]
        self.assertEqual((status, json.loads(body)["error"]["code"]), (429, "rate_limited"))
        self.assertEqual(headers["retry-after"], "1")
        # The same bucket as publishing over HTTP: the user's, on every worker.
        self.assertEqual(publish(self.p, token, "lobby", "x")[0], 429)
        # Another user is not held back.
        other = session(self.p, "other")
        self.assertEqual(self.p.request("GET", "/api/chat/stream?query=help&token=" + other)[0], 200)


class AgentConfig(unittest.TestCase):
    """parleyd --check-config on the agent keys: one line FILE:LINE, exit 2."""

    def setUp(self):
        self.env = Env()
        self.addCleanup(self.env.close)

    def check(self, text):
        path = os.path.join(self.env.tmpdir, "parley.conf")
        with open(path, "w") as f:
            f.write("listen = 127.0.0.1:0\n" + text)
        return path, run_parleyd(["--check-config", "-c", path])

    def assert_error(self, text, line, pattern):
        path, r = self.check(text)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertRegex(r.stderr.strip(), "^%s:%d: %s" % (re.escape(path), line, pattern))

    def test_agent_keys(self):
        self.assert_error("agent = gpt\n", 2, r"invalid value 'gpt' for 'agent' \(builtin, openai or sse\)")
        self.assert_error("agent = sse\n", 2, r"agent = sse needs agent_url \(the service's URL with \{query\}")
        self.assert_error("agent = sse\nagent_url = http://127.0.0.1:8000/chat\n", 3, r"invalid value .*: the template must name \{query\}")
        self.assert_error("agent = sse\nagent_url = http://127.0.0.1:8000/c?q={query}&x={model}\n", 3,
                          r"invalid value .*: names something but \{query\}")
        self.assert_error("\nagent = openai\n", 3, r"agent = openai needs agent_url")
        self.assert_error("agent = openai\nagent_url = https://api.example.com\n", 3,
                          r"invalid value 'https://api.example.com' for 'agent_url': https is not supported")
        for bad in ("ftp://x", "http://", "http://h:0", "http://h:99999", "http://u:p@h:1", "http://h/x?y=1"):
            self.assert_error("agent = openai\nagent_url = %s\n" % bad, 3, r"invalid value .* for 'agent_url'")
        self.assert_error("agent = openai\nagent_url = http://127.0.0.1:9\nagent_api_key_file = /nonexistent/key\n",
                          4, r"cannot read agent_api_key_file '/nonexistent/key'")
        self.assert_error("agent_first_token_timeout = 10ms\n", 2, r"invalid value '10ms'")
        for good in ("agent = openai\nagent_url = http://127.0.0.1:9\n",
                     "agent = openai\nagent_url = http://[::1]:8080/prefix/v1\n",
                     "agent = openai\nagent_url = http://llm.example\n",
                     "agent = builtin\nagent_url = https://ignored.example\n",
                     "agent = sse\nagent_url = http://127.0.0.1:8000/chat/stream?query={query}&room={room}\n"):
            _, r = self.check(good)
            self.assertEqual(r.returncode, 0, (good, r.stderr))


if __name__ == "__main__":
    unittest.main()
