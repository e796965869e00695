"""Resumable agent answers (docs/protocol.md "Answers"), on two real
parleyd instances sharing one real redis-server, with the built-in agent
(one word every agent_delay): chunks with ids in the room's order, resumed
over WebSocket and SSE on the same and the other instance, a fresh join
mid-answer, history without chunks, coalescing, cancelling by the asker
(and not by anyone else), the asker leaving, and the producing worker
killed mid-answer."""

import json
import os
import signal
import time
import unittest
import urllib.parse

from harness import SLOW, Env, SSEClient, publish, redis_cli, session, wait_for
from wsclient import WSClient

T = 10.0 * SLOW
WORDS = 40


def question(n):
    """A question the built-in agent answers word by word ("You said: ...")."""
    return " ".join("w%d-%d" % (n, i) for i in range(WORDS))


def answer_of(q):
    return "You said: " + q


def id_key(i):
    ms, seq = i.split("-")
    return int(ms), int(seq)


class Answers(unittest.TestCase):
    """P and Q: two instances on one Redis, one worker each, built-in agent
    at one word per 40 ms, every word its own chunk (agent_coalesce = 0).
    C: a third instance that coalesces (agent_coalesce = 200ms, a word
    every 20 ms)."""

    _counter = 0

    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        try:
            base = {"workers": "1", "agent_delay": "40ms", "agent_coalesce": "0"}
            cls.p = cls.env.parleyd(base)
            cls.q = cls.env.parleyd(base)
            cls.c = cls.env.parleyd(dict(base, agent_delay="20ms", agent_coalesce="200ms"))
            cls.fast = cls.env.parleyd(dict(base, agent_delay="5ms"))
        except BaseException:
            cls.env.close()
            raise
        cls.tokens = {}

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        Answers._counter += 1
        self.n = Answers._counter
        self.room = "answers%d" % self.n
        self.clients = []
        self.addCleanup(self._close_clients)

    def _close_clients(self):
        for c in self.clients:
            if isinstance(c, SSEClient):
                c.close()
            else:
                c.shutdown()

    def token(self, user, p=None):
        p = p or self.p
        if user not in self.tokens:
            self.tokens[user] = session(p, user)
        return self.tokens[user]

    def ws(self, user, p=None, last=None):
        """A WebSocket in the room; returns (client, welcome)."""
        p = p or self.p
        path = "/ws/chat/%s?token=%s" % (self.room, self.token(user, p))
        if last is not None:
            path += "&last_event_id=" + urllib.parse.quote(last)
        c = WSClient.connect(p.port, path, timeout=T)
        self.clients.append(c)
        welcome = c.recv_json(T)
        self.assertEqual(welcome["type"], "welcome", welcome)
        return c, welcome

    def sse(self, user, p=None, last=None):
        p = p or self.p
        headers = {"Last-Event-ID": last} if last is not None else {}
        c = SSEClient(p.port, "/api/rooms/%s/events?token=%s" % (self.room, self.token(user, p)),
                      headers=headers, timeout=T)
        self.clients.append(c)
        return c

    def ask(self, user, q=None, p=None):
        """USER asks over its own WebSocket; returns (client, question)."""
        q = q or question(self.n)
        c, _ = self.ws(user, p)
        c.send_json({"type": "ask", "content": q})
        return c, q

    @staticmethod
    def read_answer(c, until="ai_done", docs=None):
        """Reads a WebSocket up to the answer's ai_done: (chunks, others)."""
        chunks, others = [], []
        while True:
            d = c.recv_json(T)
            (chunks if d["type"] == "ai_chunk" else others).append(d)
            if d["type"] == until:
                return chunks, others

    def assert_in_order_once(self, chunks):
        ids = [c["id"] for c in chunks]
        self.assertEqual(ids, sorted(ids, key=id_key), "chunks out of order")
        self.assertEqual(len(ids), len(set(ids)), "a chunk twice")

    def history(self, user="reader", p=None):
        p = p or self.p
        status, _, body = p.request("GET", "/api/rooms/%s/messages?token=%s" % (self.room, self.token(user, p)))
        self.assertEqual(status, 200)
        return json.loads(body)["messages"]

    # --- streaming and resuming ------------------------------------------------

    def test_chunks_have_ids_and_the_answer_is_stored_with_its_request_id(self):
        asker, q = self.ask("alice")
        chunks, others = self.read_answer(asker)
        self.assert_in_order_once(chunks)
        self.assertEqual("".join(c["content"] for c in chunks), answer_of(q))
        self.assertEqual(len(chunks), WORDS + 2)        # every word its own chunk here
        rid = chunks[0]["request_id"]
        self.assertRegex(rid, r"^[0-9a-f]{16}$")
        self.assertEqual({c["request_id"] for c in chunks}, {rid})
        self.assertEqual({c["asker"] for c in chunks}, {"alice"})
        message = [d for d in others if d["type"] == "message"][-1]
        done = others[-1]
        self.assertEqual(done, {"type": "ai_done", "request_id": rid, "id": message["id"], "status": "complete"})
        self.assertEqual((message["from"], message["content"], message["request_id"]), ("agent", answer_of(q), rid))
        self.assertNotIn("status", message)
        self.assertGreater(id_key(message["id"]), id_key(chunks[-1]["id"]))
        # History has the message, byte for byte as delivered, and no chunk.
        self.assertEqual(self.history()[-1], message)
        self.assertEqual([m["type"] for m in self.history()], ["message"])

    def test_reconnecting_mid_answer_over_websocket_to_either_instance(self):
        for other in (self.p, self.q):
            with self.subTest(instance="same" if other is self.p else "other"):
                self.room = "answers%d%s" % (self.n, "same" if other is self.p else "other")
                viewer, _ = self.ws("viewer")
                _, q = self.ask("alice")
                seen = [viewer.recv_json(T, type="ai_chunk") for _ in range(5)]
                viewer.shutdown()
                time.sleep(0.3 * SLOW)                  # chunks go by meanwhile
                again, welcome = self.ws("viewer", other, last=seen[-1]["id"])
                rest, others = self.read_answer(again)
                self.assertNotIn("reset", [d["type"] for d in others])
                self.assertGreater(id_key(rest[0]["id"]), id_key(seen[-1]["id"]))
                self.assert_in_order_once(seen + rest)
                self.assertEqual("".join(c["content"] for c in seen + rest), answer_of(q))

    def test_reconnecting_mid_answer_over_sse_to_either_instance(self):
        for other in (self.p, self.q):
            with self.subTest(instance="same" if other is self.p else "other"):
                self.room = "answers%d%s" % (self.n, "same" if other is self.p else "other")
                s = self.sse("viewer")
                s.wait_ready(T)
                time.sleep(0.1 * SLOW)
                _, q = self.ask("alice")
                seen = s.wait_events(5, T, kind="ai_chunk")[:5]
                s.close()
                time.sleep(0.3 * SLOW)
                s2 = self.sse("viewer", other, last=seen[-1]["id"])
                s2.wait_events(1, T, kind="ai_done")
                rest = [e for e in s2.events if e.get("event") == "ai_chunk"]
                self.assertTrue(all(e["id"] == e["json"]["id"] for e in seen + rest))
                chunks = [e["json"] for e in seen + rest]
                self.assert_in_order_once(chunks)
                self.assertEqual("".join(c["content"] for c in chunks), answer_of(q))
                message = [e for e in s2.events if e.get("event") == "message"][-1]
                self.assertEqual(message["id"], message["json"]["id"])

    def test_joining_mid_answer_shows_it_from_its_first_chunk(self):
        _, q = self.ask("alice")
        time.sleep(0.5 * SLOW)
        late, welcome = self.ws("late", self.q)
        s = self.sse("latesse", self.q)
        chunks, _ = self.read_answer(late)
        self.assertEqual("".join(c["content"] for c in chunks), answer_of(q))
        self.assertEqual(chunks[0]["content"], "You ")
        self.assert_in_order_once(chunks)
        # The welcome names the newest id; the chunks before it came with it.
        self.assertTrue(any(c["id"] == welcome["last_id"] for c in chunks), welcome)
        s.wait_events(1, T, kind="ai_done")
        got = [e["json"] for e in s.events if e.get("event") == "ai_chunk"]
        self.assertEqual(got, chunks)

    def test_resuming_from_a_chunk_after_the_answer_ended_gets_the_message(self):
        asker, q = self.ask("alice")
        chunks, others = self.read_answer(asker)
        message = [d for d in others if d["type"] == "message"][-1]
        again, _ = self.ws("alice", self.q, last=chunks[3]["id"])
        self.assertEqual(again.recv_json(T), message)      # not a reset: the id was a chunk's
        s = self.sse("viewer", self.q, last=chunks[3]["id"])
        got = s.wait_events(1, T)[0]
        self.assertEqual((got["event"], got["json"]), ("message", message))
        # An id that never was is still a reset.
        bogus = "%d-%d" % (id_key(chunks[0]["id"])[0] - 1, 7)
        again, _ = self.ws("alice", self.q, last=bogus)
        self.assertEqual(again.recv_json(T)["type"], "reset")

    def test_a_reset_still_shows_the_answer_in_progress(self):
        _, q = self.ask("alice")
        time.sleep(0.3 * SLOW)
        again, _ = self.ws("bob", self.q, last="1-7")
        s = self.sse("sseviewer", self.q, last="1-7")
        self.assertEqual(again.recv_json(T)["type"], "reset")
        chunks, _ = self.read_answer(again)
        self.assertEqual("".join(c["content"] for c in chunks), answer_of(q))
        self.assert_in_order_once(chunks)
        s.wait_events(1, T, kind="ai_done")
        self.assertEqual(s.events[0]["event"], "reset")
        got = [e["json"] for e in s.events if e.get("event") == "ai_chunk"]
        self.assertEqual("".join(c["content"] for c in got), answer_of(q))

    def test_history_skips_chunks_while_an_answer_is_in_progress(self):
        tok = self.token("alice")
        for i in range(3):
            status, _, _ = self.p.request("POST", "/api/rooms/%s/messages?token=%s" % (self.room, tok),
                                          body=json.dumps({"content": "m%d" % i}),
                                          headers={"Content-Type": "application/json"})
            self.assertEqual(status, 201)
        asker, _ = self.ask("alice")
        [asker.recv_json(T, type="ai_chunk") for _ in range(10)]
        msgs = self.history()
        self.assertEqual([m["content"] for m in msgs], ["m0", "m1", "m2"])
        status, _, body = self.p.request("GET", "/api/rooms/%s/messages?limit=2&token=%s" % (self.room, tok))
        self.assertEqual([m["content"] for m in json.loads(body)["messages"]], ["m1", "m2"])
        asker.send_json({"type": "history", "limit": 2})
        h = asker.recv_json(T, type="history")
        self.assertEqual([m["content"] for m in h["messages"]], ["m1", "m2"])

    # --- coalescing ------------------------------------------------------------

    def test_chunks_close_together_share_an_event_and_the_first_goes_at_once(self):
        asker, q = self.ask("carol", p=self.c)
        chunks, _ = self.read_answer(asker)
        self.assertEqual("".join(c["content"] for c in chunks), answer_of(q))
        self.assertEqual(chunks[0]["content"], "You ")
        # 42 words at one per 20 ms, 200 ms apart: about a tenth as many events.
        self.assertLess(len(chunks), (WORDS + 2) // 3, [c["content"] for c in chunks])
        self.assert_in_order_once(chunks)

    def test_a_long_answer_leaves_a_bounded_number_of_chunks(self):
        # 400 words, one per 5 ms, every chunk its own event at first: past
        # 256 events they share one at least every 250 ms.
        asker, q = self.ask("lena", question(self.n) + " " + " ".join("x%d" % i for i in range(360)), p=self.fast)
        chunks, _ = self.read_answer(asker)
        self.assertEqual("".join(c["content"] for c in chunks), answer_of(q))
        self.assertGreaterEqual(len(chunks), 256)
        self.assertLess(len(chunks), 256 + 12, len(chunks))

    # --- cancelling ----------------------------------------------------------------

    def test_the_asker_cancels_from_another_connection(self):
        asker, q = self.ask("alice")
        viewer, _ = self.ws("bob", self.q)
        second, _ = self.ws("alice", self.q)
        first = asker.recv_json(T, type="ai_chunk")
        rid = first["request_id"]
        # Someone else may not.
        viewer.send_json({"type": "cancel", "request_id": rid})
        err = viewer.recv_json(T, type="error")
        self.assertEqual(err["code"], "bad_request")
        self.assertRegex(err["message"], "only the user who asked")
        status, _, body = self.q.request("DELETE", "/api/rooms/%s/answers/%s?token=%s"
                                         % (self.room, rid, self.token("bob")))
        self.assertEqual((status, json.loads(body)["error"]["code"]), (403, "forbidden"))
        [asker.recv_json(T, type="ai_chunk") for _ in range(3)]
        second.send_json({"type": "cancel", "request_id": rid})
        for c in (asker, viewer, second):
            chunks, others = self.read_answer(c)
            done = others[-1]
            self.assertEqual((done["request_id"], done["status"]), (rid, "cancelled"))
            message = [d for d in others if d["type"] == "message"][-1]
            self.assertEqual(message["id"], done["id"])
            self.assertEqual(message["status"], "cancelled")
            self.assertTrue(answer_of(q).startswith(message["content"]))
            self.assertLess(len(message["content"]), len(answer_of(q)))
        self.assertEqual(self.history()[-1], message)
        # No chunk after the end, and the agent stopped: nothing more comes.
        self.assertEqual([d for d in asker.drain(0.5 * SLOW) if d.get("type") == "ai_chunk"], [])
        # Cancelling again, or an unknown id: nothing is in progress.
        status, _, body = self.p.request("DELETE", "/api/rooms/%s/answers/%s?token=%s"
                                         % (self.room, rid, self.token("alice")))
        self.assertEqual((status, json.loads(body)["error"]["code"]), (404, "not_found"))
        second.send_json({"type": "cancel", "request_id": "nope"})
        self.assertEqual(second.recv_json(T, type="error")["code"], "bad_request")

    def test_cancel_over_http(self):
        asker, _ = self.ask("alice")
        rid = asker.recv_json(T, type="ai_chunk")["request_id"]
        status, _, body = self.q.request("DELETE", "/api/rooms/%s/answers/%s?token=%s"
                                         % (self.room, rid, self.token("alice")))
        self.assertEqual((status, json.loads(body)), (200, {"request_id": rid, "status": "cancelled"}))
        _, others = self.read_answer(asker)
        self.assertEqual(others[-1]["status"], "cancelled")

    # --- the asker or the producer going away --------------------------------------

    def test_the_answer_goes_on_when_the_asker_leaves(self):
        viewer, _ = self.ws("bob", self.q)
        asker, q = self.ask("alice")
        asker.recv_json(T, type="ai_chunk")
        asker.shutdown()
        chunks, others = self.read_answer(viewer)
        self.assertEqual(others[-1]["status"], "complete")
        message = [d for d in others if d["type"] == "message"][-1]
        self.assertEqual(message["content"], answer_of(q))

    def test_a_killed_worker_ends_its_answers_as_incomplete(self):
        viewer, _ = self.ws("bob", self.q)
        s = self.sse("sseviewer", self.q)
        _, q = self.ask("alice")
        [viewer.recv_json(T, type="ai_chunk") for _ in range(5)]
        worker = self.p.workers()[0]
        os.kill(worker, signal.SIGKILL)
        started = time.monotonic()
        chunks, others = self.read_answer(viewer)
        self.assertLess(time.monotonic() - started, 5 * SLOW)
        done = others[-1]
        self.assertEqual(done["status"], "incomplete")
        message = [d for d in others if d["type"] == "message"][-1]
        self.assertEqual((message["id"], message["status"]), (done["id"], "incomplete"))
        self.assertTrue(answer_of(q).startswith(message["content"]))
        self.assertEqual(self.history(p=self.q)[-1], message)
        s.wait_events(1, T, kind="ai_done")
        self.assertEqual(s.events[-1]["json"], done)
        wait_for(lambda: self.p.workers() and self.p.workers()[0] != worker, T, what="a new worker")

    def test_a_dead_instance_s_answers_end_incomplete_when_it_is_reaped(self):
        doomed = self.env.parleyd({"workers": "1", "agent_delay": "40ms", "instance_ttl": "3s"})
        viewer, _ = self.ws("bob", self.q)
        c = WSClient.connect(doomed.port, "/ws/chat/%s?token=%s" % (self.room, self.token("alice")), timeout=T)
        self.clients.append(c)
        c.recv_json(T, type="welcome")
        c.send_json({"type": "ask", "content": question(self.n)})
        [viewer.recv_json(T, type="ai_chunk") for _ in range(3)]
        doomed.kill()                       # master, bus and worker at once: nobody says goodbye
        started = time.monotonic()
        _, others = self.read_answer(viewer)
        # Its heartbeat lapses (3 s), then another instance's reaper (every
        # third of its own instance_ttl, 10 s) ends its answers.
        self.assertLess(time.monotonic() - started, 3 + 10 / 3.0 + 2 * SLOW)
        self.assertEqual(others[-1]["status"], "incomplete")
        self.assertEqual(self.history(p=self.q)[-1]["status"], "incomplete")



class PrivateAnswers(unittest.TestCase):
    """GET /api/chat/stream: the asker's own answer, followed by a stream
    that can resume anywhere and lingers (agent_linger = 1s) when it goes.
    P and Q share one Redis; built-in agent, a word every 40 ms."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        try:
            base = {"workers": "1", "agent_delay": "40ms", "agent_coalesce": "0", "agent_linger": "1s"}
            cls.p = cls.env.parleyd(base)
            cls.q = cls.env.parleyd(base)
        except BaseException:
            cls.env.close()
            raise
        cls.token = session(cls.p, "asker")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        self.streams = []
        self.addCleanup(lambda: [s.close() for s in self.streams])

    def stream(self, p, q=None, last=None, token=None):
        path = "/api/chat/stream?token=" + (token or self.token)
        if q is not None:
            path += "&query=" + urllib.parse.quote(q)
        s = SSEClient(p.port, path, headers={"Last-Event-ID": last} if last else {}, timeout=T)
        self.streams.append(s)
        return s

    @staticmethod
    def chunks(s):
        return [e for e in s.events if e.get("event") == "ai_chunk"]

    def test_a_stream_resumes_on_the_other_instance_and_asks_nothing_again(self):
        q = question(1000)
        first = self.stream(self.p, q)
        got = first.wait_events(5, T, kind="ai_chunk")[:5]
        rid = got[0]["json"]["request_id"]
        self.assertEqual(got[0]["id"].split("/")[0], rid)
        first.close()
        time.sleep(0.2 * SLOW)
        again = self.stream(self.q, q, last=got[-1]["id"])
        wait_for(lambda: again.ended, T, what="the end of the answer")
        rest = self.chunks(again)
        ids = [e["id"] for e in got + rest]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual("".join(e["json"]["content"] for e in got + rest), answer_of(q))
        self.assertEqual(again.events[-1]["event"], "ai_done")
        self.assertEqual(again.events[-1]["json"]["done"], True)
        # Resuming after the end: the end again, from the stored answer.
        late = self.stream(self.q, q, last=got[-1]["id"])
        wait_for(lambda: late.ended, T, what="the end")
        self.assertEqual([e["event"] for e in late.events][-1], "ai_done")
        self.assertEqual("".join(e["json"]["content"] for e in self.chunks(late)),
                         "".join(e["json"]["content"] for e in rest))

    def test_a_follower_keeps_the_answer_going_past_the_linger(self):
        q = question(1001)          # about 1.7 s of words, linger 1 s
        first = self.stream(self.p, q)
        got = first.wait_events(1, T, kind="ai_chunk")[:1]
        first.close()
        again = self.stream(self.q, q, last=got[-1]["id"])
        wait_for(lambda: again.ended, T, what="the end of the answer")
        self.assertEqual(again.events[-1]["event"], "ai_done")
        self.assertEqual("".join(e["json"]["content"] for e in got + self.chunks(again)), answer_of(q))

    def test_an_answer_nobody_follows_is_given_up_after_the_linger(self):
        q = question(1002)
        first = self.stream(self.p, q)
        got = first.wait_events(2, T, kind="ai_chunk")[:2]
        first.close()
        self.p.wait_log(r"event=answer_abandoned scope=~asker request_id=" + got[0]["json"]["request_id"],
                        timeout=T)
        late = self.stream(self.q, q, last=got[-1]["id"])
        wait_for(lambda: late.ended, T, what="the end")
        end = late.events[-1]
        self.assertEqual((end["event"], end["json"]["code"]), ("error", "agent_unavailable"))
        self.assertRegex(end["json"]["message"], "before it was complete")
        told = "".join(e["json"]["content"] for e in got + self.chunks(late))
        self.assertTrue(answer_of(q).startswith(told))
        self.assertLess(len(told), len(answer_of(q)))

    def test_the_asker_cancels_a_private_answer(self):
        s = self.stream(self.p, question(1003))
        rid = s.wait_events(1, T, kind="ai_chunk")[0]["json"]["request_id"]
        other = session(self.p, "someone")
        status, _, body = self.q.request("DELETE", "/api/chat/answers/%s?token=%s" % (rid, other))
        self.assertEqual((status, json.loads(body)["error"]["code"]), (404, "not_found"))   # not theirs to see
        status, _, body = self.q.request("DELETE", "/api/chat/answers/%s?token=%s" % (rid, self.token))
        self.assertEqual((status, json.loads(body)), (200, {"request_id": rid, "status": "cancelled"}))
        wait_for(lambda: s.ended, T, what="the end")
        self.assertEqual((s.events[-1]["event"], s.events[-1]["json"]["status"]), ("ai_done", "cancelled"))

    def test_resume_ids_that_are_not_ours(self):
        status, _, body = self.p.request("GET", "/api/chat/stream?token=%s" % self.token,
                                         headers={"Last-Event-ID": "not-an-id"})
        self.assertEqual((status, json.loads(body)["error"]["code"]), (400, "bad_request"))
        status, _, _ = self.p.request("GET", "/api/chat/stream?token=%s" % self.token,
                                      headers={"Last-Event-ID": "0123456789abcdef/5-x"})
        self.assertEqual(status, 400)
        s = self.stream(self.p, last="0123456789abcdef/1-0")
        wait_for(lambda: s.ended, T, what="the end")
        self.assertEqual(s.status, 200)
        self.assertEqual((s.events[-1]["event"], s.events[-1]["json"]["code"]), ("error", "not_found"))
        # Another user's answer is not found in one's own scope.
        mine = self.stream(self.p, question(1004))
        got = mine.wait_events(1, T, kind="ai_chunk")
        theirs = self.stream(self.q, last=got[0]["id"], token=session(self.p, "nosy"))
        wait_for(lambda: theirs.ended, T, what="the end")
        self.assertEqual(self.chunks(theirs), [])
        self.assertEqual(theirs.events[-1]["json"]["code"], "not_found")


class AnswerLimits(unittest.TestCase):
    """What the outside audit of answers found, each kept from coming back:
    history_length = 20, agent_max_per_user = 2, a word every 20 ms."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        try:
            cls.p = cls.env.parleyd({"workers": "2", "agent_delay": "20ms", "agent_coalesce": "0",
                                     "history_length": "20", "agent_max_per_user": "2", "rate_limit": "0"})
        except BaseException:
            cls.env.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        self.clients = []
        self.addCleanup(lambda: [c.close() if isinstance(c, SSEClient) else c.shutdown() for c in self.clients])

    def ws(self, token, room, last=None):
        path = "/ws/chat/%s?token=%s" % (room, token) + ("&last_event_id=" + last if last is not None else "")
        c = WSClient.connect(self.p.port, path, timeout=T)
        self.clients.append(c)
        self.assertEqual(c.recv_json(T)["type"], "welcome")
        return c

    def history(self, token, room):
        return json.loads(self.p.request("GET", "/api/rooms/%s/messages?token=%s" % (room, token))[2])["messages"]

    def test_an_answer_s_chunks_do_not_push_messages_out_of_history(self):
        tok = session(self.p, "hana")
        for i in range(120):                    # more than a stream node (100 entries)
            self.assertEqual(publish(self.p, tok, "keep", "m%d" % i)[0], 201)
        c = self.ws(tok, "keep")
        q = " ".join("w%d" % i for i in range(130))     # 132 chunks, over six times the history
        c.send_json({"type": "ask", "content": q})
        [c.recv_json(T, type="ai_chunk") for _ in range(120)]
        self.assertEqual(publish(self.p, tok, "keep", "during")[0], 201)
        _, others = Answers.read_answer(c)
        self.assertEqual(others[-1]["status"], "complete")
        msgs = self.history(tok, "keep")
        # At least the last 20 messages (trimming is approximate): 18 old
        # ones, the one posted during, the answer - whole.
        self.assertEqual([m["content"] for m in msgs[:-2]][-18:], ["m%d" % i for i in range(102, 120)])
        self.assertEqual(msgs[-2]["content"], "during")
        self.assertEqual(msgs[-1]["content"], answer_of(q))

    def test_one_user_may_have_only_so_many_answers_running(self):
        tok, other = session(self.p, "greedy"), session(self.p, "patient")
        a, b = self.ws(tok, "busy1"), self.ws(tok, "busy2")
        long_question = " ".join("w%d" % i for i in range(150))      # 3 s of words: still running below
        a.send_json({"type": "ask", "content": long_question})
        b.send_json({"type": "ask", "content": long_question})
        a.recv_json(T, type="ai_chunk")
        b.recv_json(T, type="ai_chunk")
        a.send_json({"type": "ask", "content": question(3)})
        err = a.recv_json(T, type="error")
        self.assertEqual(err["code"], "agent_busy")
        self.assertRegex(err["message"], "most answers running")
        status, _, body = self.p.request("GET", "/api/chat/stream?query=x&token=" + tok)
        self.assertIn(b"agent_busy", body)                  # on the stream: the error event
        # Someone else is not held back; and once one ends, the user may ask again.
        o = self.ws(other, "busy3")
        o.send_json({"type": "ask", "content": "hello"})
        self.assertEqual(Answers.read_answer(o)[1][-1]["status"], "complete")
        Answers.read_answer(a)
        a.send_json({"type": "ask", "content": "again"})
        self.assertEqual(a.recv_json(T, type="ai_chunk")["content"], "You ")

    def test_a_long_private_answer_resumes_whole(self):
        tok = session(self.p, "longread")
        q = question(9)                         # 42 chunks, more than a page of 20
        s = SSEClient(self.p.port, "/api/chat/stream?query=%s&token=%s" % (urllib.parse.quote(q), tok), timeout=T)
        self.clients.append(s)
        first = s.wait_events(1, T, kind="ai_chunk")[0]
        s.close()
        again = SSEClient(self.p.port, "/api/chat/stream?token=" + tok, headers={"Last-Event-ID": first["id"]},
                          timeout=T)
        self.clients.append(again)
        wait_for(lambda: again.ended, T, what="the end")
        text = first["json"]["content"] + "".join(e["json"]["content"] for e in again.events
                                                  if e.get("event") == "ai_chunk")
        self.assertEqual((text, again.events[-1]["event"]), (answer_of(q), "ai_done"))
        # After the end too.
        late = SSEClient(self.p.port, "/api/chat/stream?token=" + tok, headers={"Last-Event-ID": first["id"]},
                         timeout=T)
        self.clients.append(late)
        wait_for(lambda: late.ended, T, what="the end")
        self.assertEqual(first["json"]["content"] + "".join(e["json"]["content"] for e in late.events
                                                            if e.get("event") == "ai_chunk"), answer_of(q))

    def test_a_plus_in_a_query_is_a_plus(self):
        tok = session(self.p, "cpp")
        s = SSEClient(self.p.port, "/api/chat/stream?query=C%2B%2B+and+1%2B1&token=" + tok, timeout=T)
        self.clients.append(s)
        wait_for(lambda: s.ended, T, what="the end")
        self.assertEqual("".join(e["json"]["content"] for e in s.events if e.get("event") == "ai_chunk"),
                         "You said: C++ and 1+1")

    def test_a_revoked_session_cannot_ask(self):
        tok = session(self.p, "gone")
        c = self.ws(tok, "revokedask")
        redis_cli(self.env.redis, "DEL", "parley:session:" + tok)   # no event: the ask itself must find out
        c.send_json({"type": "ask", "content": "still here?"})
        self.assertEqual(c.expect_close(timeout=T), (1008, "session revoked"))
        self.assertEqual(self.history(session(self.p, "reader"), "revokedask"), [])

    def test_undecodable_resume_ids_are_a_reset(self):
        tok = session(self.p, "resetter")
        publish(self.p, tok, "undecodable", "x")
        for bad in ("%zz", "%00", "1" * 80 + "-0", "5-5%"):
            c = self.ws(tok, "undecodable", last=bad)
            self.assertEqual(c.recv_json(T)["type"], "reset", bad)
            s = SSEClient(self.p.port, "/api/rooms/undecodable/events?token=%s&last_event_id=%s" % (tok, bad),
                          timeout=T)
            self.clients.append(s)
            self.assertEqual(s.wait_events(1, T)[0]["event"], "reset", bad)

if __name__ == "__main__":
    unittest.main()
