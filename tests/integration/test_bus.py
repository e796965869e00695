"""The message bus across workers and instances, on real parleyd processes
and a real redis-server: fan-out, ordering, one subscriber connection per
host, surviving the bus process and Redis restarts, catching up after a
ring overrun, and presence cleanup."""

import json
import os
import re
import signal
import threading
import time
import unittest

from harness import Env, SLOW, SSEClient, jwt, publish, redis_cli, session, wait_for


def sse_per_worker(p):
    """{worker pid: open SSE streams} from /metrics."""
    _, _, body = p.request("GET", "/metrics")
    out = {}
    for m in re.finditer(r'parley_worker_connections\{worker="\d+",pid="(\d+)",transport="sse"\} (\d+)',
                         body.decode()):
        out[int(m.group(1))] = int(m.group(2))
    return out


def open_stream(p, token, room="lobby", headers=None):
    c = SSEClient(p.port, "/api/rooms/%s/events?token=%s" % (room, token), headers=headers)
    assert c.wait_ready() == 200, getattr(c, "body", "")
    return c


def lap_frozen_worker(worker, publisher, token, room, n=400):
    """Publishes N 300-byte messages through PUBLISHER while WORKER is
    frozen, enough to lap a 64 KiB ring; returns their ids."""
    os.kill(worker, signal.SIGSTOP)
    try:
        return [publish(publisher, token, room, "x" * 300 + " %d" % i)[1]["id"] for i in range(n)]
    finally:
        os.kill(worker, signal.SIGCONT)


class Bus(unittest.TestCase):
    def setUp(self):
        self.env = Env()
        self.addCleanup(self.env.close)
        self.streams = []
        self.addCleanup(lambda: [s.close() for s in self.streams])

    def stream(self, p, token, room="lobby", headers=None):
        s = open_stream(p, token, room, headers)
        self.streams.append(s)
        return s

    def members(self, room="lobby"):
        """The room's presence in Redis: {user: count}."""
        out = redis_cli(self.env.redis, "HGETALL", "parley:room:%s:members" % room).split()
        return dict(zip(out[::2], out[1::2]))

    def subscribers_everywhere(self, instances, token):
        """Opens streams until every worker of every instance has one."""
        for p in instances:
            for _ in range(40):
                counts = sse_per_worker(p)
                if len(counts) == len(p.workers()) and all(counts.values()):
                    break
                self.stream(p, token)
                time.sleep(0.02)
            self.assertTrue(all(sse_per_worker(p).values()), sse_per_worker(p))

    def test_fan_out_every_worker_both_instances_same_order(self):
        a = self.env.parleyd({"workers": "2"})
        b = self.env.parleyd({"workers": "2"})
        tok_a, tok_b = session(a, "alice"), session(b, "bob")
        watcher = session(a, "watcher")
        self.subscribers_everywhere([a, b], watcher)
        time.sleep(0.2)             # let every subscription settle
        ids = []
        for i in range(40):
            p, tok = (a, tok_a) if i % 2 == 0 else (b, tok_b)
            status, body = publish(p, tok, "lobby", "message %d" % i)
            self.assertEqual(status, 201, body)
            ids.append(body["id"])
        self.assertEqual(ids, sorted(ids, key=lambda x: tuple(map(int, x.split("-")))))
        for s in self.streams:
            got = s.wait_events(40, kind="message")
            self.assertEqual([e["id"] for e in got], ids)
            self.assertEqual([e["json"]["content"] for e in got], ["message %d" % i for i in range(40)])
            self.assertEqual([e["json"]["id"] for e in got], ids)

    def test_one_subscriber_connection_per_instance(self):
        a = self.env.parleyd({"workers": "2"})
        b = self.env.parleyd({"workers": "2"})
        tok = session(a, "alice")
        for p in (a, b):
            for room in ("r1", "r2", "r3"):
                for _ in range(3):
                    self.stream(p, tok, room)
        time.sleep(0.3)
        clients = redis_cli(self.env.redis, "CLIENT", "LIST", "TYPE", "pubsub").splitlines()
        self.assertEqual(len(clients), 2, clients)
        # Each holds the three rooms and the user's channel.
        for line in clients:
            self.assertIn("sub=4", line)

    def test_subscriptions_follow_local_interest(self):
        # A host subscribes to a room only while someone local is in it.
        a = self.env.parleyd({"workers": "2"})
        tok = session(a, "alice")

        def numsub(channel):
            out = redis_cli(self.env.redis, "PUBSUB", "NUMSUB", channel).splitlines()
            return int(out[1])

        self.assertEqual(numsub("parley:room:quiet"), 0)
        s = self.stream(a, tok, "quiet")
        wait_for(lambda: numsub("parley:room:quiet") == 1, what="subscribed")
        self.assertEqual(numsub("parley:room:elsewhere"), 0)
        s.close()
        self.streams.remove(s)
        # Dropped after a short grace period (rejoining rooms does not churn).
        wait_for(lambda: numsub("parley:room:quiet") == 0, timeout=6, what="unsubscribed")

    def test_bus_killed_mid_stream_nothing_lost(self):
        a = self.env.parleyd({"workers": "2"})
        tok = session(a, "alice")
        s = self.stream(a, tok)
        time.sleep(0.2)
        acked = []
        stop = threading.Event()

        def publisher():
            i = 0
            while not stop.is_set() and i < 400:
                try:
                    status, body = publish(a, tok, "lobby", "n%d" % i)
                except OSError:
                    return      # parleyd stopped: the test has failed already
                if status == 201:
                    acked.append(body["id"])
                i += 1
                time.sleep(0.005)

        t = threading.Thread(target=publisher)
        t.start()
        self.addCleanup(t.join)
        self.addCleanup(stop.set)
        time.sleep(0.3)
        old_bus = a.bus_pid()
        os.kill(old_bus, signal.SIGKILL)
        wait_for(lambda: a.bus_pid() not in (None, old_bus), timeout=3, what="bus respawn")
        t.join()
        stop.set()
        a.wait_log(r"event=bus_died status=\"signal 9")
        # Every acknowledged message is in history ...
        history = redis_cli(self.env.redis, "XRANGE", "parley:room:lobby:log", "-", "+")
        for mid in acked:
            self.assertIn(mid, history)
        # ... and the stream got all of them, in order, without duplicates:
        # the room was caught up from Redis after the bus came back.
        got = [e["id"] for e in s.wait_events(len(acked), timeout=15, kind="message")]
        self.assertEqual(got[:len(acked)], acked)
        status, body = publish(a, tok, "lobby", "after")
        got = s.wait_events(len(acked) + 1, kind="message")
        self.assertEqual(got[-1]["id"], body["id"])

    def test_redis_restart_recovers_without_restarting_parleyd(self):
        a = self.env.parleyd({"workers": "2", "redis_timeout": "1s", "jwt_secret": "bus-secret"})
        tok = session(a, "alice")
        # A JWT needs nothing in Redis: its stream rides the restart out.  A
        # session does: the restarted Redis (no persistence here) has lost
        # it, and its stream is closed as a revoked one is.
        s = self.stream(a, jwt({"sub": "alice", "exp": int(time.time()) + 600}, "bus-secret"))
        by_session = self.stream(a, session(a, "carol"))
        time.sleep(0.2)
        status, first = publish(a, tok, "lobby", "before")
        self.assertEqual(status, 201)
        self.env.redis.stop()
        wait_for(lambda: a.request("GET", "/healthz")[0] == 503, what="healthz 503")
        status, _, health = a.get_json("/healthz")
        self.assertEqual((health["status"], health["redis"]), ("degraded", "down"))
        status, body = publish(a, tok, "lobby", "during")
        self.assertEqual(status, 503)
        self.assertEqual(body["error"]["code"], "redis_unavailable")
        # A new event stream (a JWT needs no Redis to check) is refused
        # rather than left silent.
        token = jwt({"sub": "bob", "exp": int(time.time()) + 60}, "bus-secret")
        status, _, body = a.request("GET", "/api/rooms/lobby/events?token=" + token)
        self.assertEqual((status, json.loads(body)["error"]["code"]), (503, "redis_unavailable"))
        self.assertFalse(s.closed)          # local connections stay open
        self.env.redis.start()
        # Sessions were in the old (memory-only) Redis: log in again.
        wait_for(lambda: a.request("GET", "/healthz")[0] == 200, timeout=10, what="healthz 200")
        tok = session(a, "alice")
        wait_for(lambda: publish(a, tok, "lobby", "after")[0] == 201, timeout=10, what="publish again")
        # Every process reconnects with its own backoff (up to 5 s): on a
        # loaded machine the catch-up may take a while.
        got = s.wait_events(2, timeout=20, kind="message")
        self.assertEqual(got[0]["id"], first["id"])
        self.assertEqual(got[1]["json"]["content"], "after")
        wait_for(lambda: by_session.ended, timeout=15, what="the lost session's stream to end")
        # Redis came back empty: alice, still connected, is counted in again.
        wait_for(lambda: self.members() == {"alice": "1"}, timeout=5, what="presence restored")
        self.assertIsNone(a.proc.poll())

    def test_frozen_redis_fails_fast_and_recovers(self):
        # A Redis that stops answering (no FIN, no RST) must not hang a
        # request: the command times out, the caller gets redis_unavailable,
        # and the connection comes back once Redis does.
        a = self.env.parleyd({"workers": "1", "redis_timeout": "500ms"})
        tok = session(a, "alice")
        self.stream(a, tok)
        wait_for(lambda: self.members() == {"alice": "1"}, what="alice present")
        self.assertEqual(publish(a, tok, "lobby", "before")[0], 201)
        os.kill(self.env.redis.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            status, body = publish(a, tok, "lobby", "during")
            self.assertEqual((status, body["error"]["code"]), (503, "redis_unavailable"))
            self.assertLess(time.monotonic() - t0, 3 * SLOW)
            a.wait_log(r"event=redis_timeout")
        finally:
            os.kill(self.env.redis.proc.pid, signal.SIGCONT)
        wait_for(lambda: publish(a, tok, "lobby", "after")[0] == 201, timeout=10, what="publishing again")
        # Redis kept its data: reconnecting does not count alice twice.
        time.sleep(0.3)
        self.assertEqual(self.members(), {"alice": "1"})

    def test_leave_missed_while_redis_was_down_is_taken_back(self):
        # Redis goes away with its data saved and comes back with it: bob
        # left meanwhile, so the worker must take his presence back.
        a = self.env.parleyd({"workers": "1"})
        self.stream(a, session(a, "alice"))
        bob = self.stream(a, session(a, "bob"))
        wait_for(lambda: self.members() == {"alice": "1", "bob": "1"}, what="both present")
        redis_cli(self.env.redis, "SHUTDOWN", "SAVE")
        self.env.redis.proc.wait(10)
        wait_for(lambda: a.request("GET", "/healthz")[0] == 503, what="healthz 503")
        bob.close()
        self.streams.remove(bob)
        a.wait_log(r"event=presence_not_recorded room=lobby user=bob delta=-1")
        self.env.redis.start()            # with the saved data: bob still in
        wait_for(lambda: self.members() == {"alice": "1"}, timeout=10, what="bob taken back")

    def test_leave_lost_in_flight_is_taken_back(self):
        # Redis accepts bob's leave but never runs it: it is paused, the
        # worker gives up on the connection, and Redis drops the command
        # with the connection.  Once Redis answers again the worker syncs.
        a = self.env.parleyd({"workers": "1", "redis_timeout": "500ms"})
        tok = session(a, "alice")
        self.stream(a, tok)
        bob = self.stream(a, session(a, "bob"))
        wait_for(lambda: self.members() == {"alice": "1", "bob": "1"}, what="both present")
        self.assertEqual(redis_cli(self.env.redis, "CLIENT", "PAUSE", "3000", "ALL"), "OK")
        bob.close()
        self.streams.remove(bob)
        status, _ = publish(a, tok, "lobby", "during")      # times out: the connection is dropped
        self.assertEqual(status, 503)
        a.wait_log(r"event=redis_timeout")
        wait_for(lambda: self.members() == {"alice": "1"}, timeout=10, what="bob taken back")

    def test_history_capped_at_history_length(self):
        a = self.env.parleyd({"workers": "1", "history_length": "10"})
        tok = session(a, "alice")
        for i in range(300):
            publish(a, tok, "capped", "m%d" % i)
        # MAXLEN ~ trims whole stream nodes (100 entries by default).
        self.assertLess(int(redis_cli(self.env.redis, "XLEN", "parley:room:capped:log")), 200)

    def test_ring_overrun_caught_up_from_stream(self):
        # A worker stopped long enough for the ring (64 KiB) to lap it
        # detects the overrun and re-reads the gap from the room's stream.
        a = self.env.parleyd({"workers": "1", "bus_ring_size": "64k"})
        b = self.env.parleyd({"workers": "1"})
        tok = session(b, "alice")
        s = self.stream(a, tok)
        publish(b, tok, "lobby", "first")
        s.wait_events(1, kind="message")
        ids = lap_frozen_worker(a.workers()[0], b, tok, "lobby")
        got = s.wait_events(401, timeout=20, kind="message")
        self.assertEqual([e["id"] for e in got[1:]], ids)
        a.wait_log(r"event=bus_overrun")
        _, _, body = a.request("GET", "/metrics")
        self.assertRegex(body.decode(), r"parley_bus_overruns_total [1-9]")

    def test_garbage_on_a_channel_is_skipped(self):
        a = self.env.parleyd({"workers": "2"})
        tok = session(a, "alice")
        s = self.stream(a, tok)
        time.sleep(0.2)
        for junk in ("no header at all", "message\n{}", "x" * 200 + "\n{}", ""):
            redis_cli(self.env.redis, "PUBLISH", "parley:room:lobby", junk)
        status, body = publish(a, tok, "lobby", "still fine")
        self.assertEqual(s.wait_events(1, kind="message")[0]["id"], body["id"])
        self.assertIn("event=malformed_bus_message", a.log())
        self.assertEqual(len(a.workers()), 2)
        self.assertNotIn("event=worker_died", a.log())

    def test_overrun_before_any_message_is_caught_up_too(self):
        # The worker has delivered nothing in the room yet when it falls a
        # ring behind: it still knows where the room stood when it joined.
        a = self.env.parleyd({"workers": "1", "bus_ring_size": "64k"})
        b = self.env.parleyd({"workers": "1"})
        tok = session(b, "alice")
        publish(b, tok, "quiet", "old news")
        s = self.stream(a, tok, "quiet")
        time.sleep(0.3)
        ids = lap_frozen_worker(a.workers()[0], b, tok, "quiet")
        got = s.wait_events(400, timeout=20, kind="message")
        self.assertEqual([e["id"] for e in got], ids)       # not the old one, none missing
        a.wait_log(r"event=bus_overrun")

    def test_presence_join_leave_across_instances(self):
        a = self.env.parleyd({"workers": "2"})
        b = self.env.parleyd({"workers": "2"})
        watcher = self.stream(b, session(b, "watcher"))
        time.sleep(0.2)
        tok = session(a, "alice")
        first = self.stream(a, tok)
        second = self.stream(a, tok)        # a second tab: no second join
        join = watcher.wait_events(1, kind="presence")[0]["json"]
        self.assertEqual(join, {"type": "presence", "event": "join", "user": "alice", "room": "lobby"})
        # Counted once per worker holding a connection of alice's.
        self.assertIn(redis_cli(self.env.redis, "HGET", "parley:room:lobby:members", "alice"), ("1", "2"))
        first.close()
        time.sleep(0.3)
        self.assertEqual(len([e for e in watcher.events if e.get("event") == "presence"]), 1)
        second.close()
        leave = watcher.wait_events(2, kind="presence")[1]["json"]
        self.assertEqual(leave["event"], "leave")
        self.assertEqual(redis_cli(self.env.redis, "HEXISTS", "parley:room:lobby:members", "alice"), "0")
        # A user does not get its own join.
        self.assertFalse([e for e in first.events if e.get("event") == "presence"
                          and e["json"]["user"] == "alice"])

    def test_presence_of_killed_worker_is_taken_back(self):
        a = self.env.parleyd({"workers": "1"})
        b = self.env.parleyd({"workers": "1"})
        watcher = self.stream(b, session(b, "watcher"))
        time.sleep(0.2)
        self.stream(a, session(a, "alice"))
        watcher.wait_events(1, kind="presence")
        os.kill(a.workers()[0], signal.SIGKILL)
        leave = watcher.wait_events(2, kind="presence", timeout=5)[1]["json"]
        self.assertEqual((leave["event"], leave["user"]), ("leave", "alice"))
        self.assertEqual(redis_cli(self.env.redis, "HEXISTS", "parley:room:lobby:members", "alice"), "0")

    def watched_instance(self, instance_id):
        """An instance (INSTANCE_ID, instance_ttl 3 s) holding alice in the
        lobby, watched from another one: (the instance, the watcher)."""
        a = self.env.parleyd({"workers": "1", "instance_ttl": "3s", "instance_id": instance_id})
        b = self.env.parleyd({"workers": "1", "instance_ttl": "3s"})
        watcher = self.stream(b, session(b, "watcher"))
        time.sleep(0.2)
        self.stream(a, session(a, "alice"))
        watcher.wait_events(1, kind="presence")
        return a, watcher

    def test_presence_of_dead_instance_is_reaped(self):
        ttl = 3.0
        a, watcher = self.watched_instance("doomed")
        self.assertEqual(redis_cli(self.env.redis, "EXISTS", "parley:instance:doomed"), "1")
        # The whole instance dies at once, without a chance to clean up:
        # frozen first, so that no process sees another one go.
        victims = [a.proc.pid] + list(a.children())
        for pid in victims:
            os.kill(pid, signal.SIGSTOP)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        leave = watcher.wait_events(2, kind="presence", timeout=2 * ttl + 2)[1]["json"]
        self.assertLess(time.monotonic() - t0, 2 * ttl * SLOW + 1)
        self.assertEqual((leave["event"], leave["user"]), ("leave", "alice"))
        self.assertEqual(redis_cli(self.env.redis, "HEXISTS", "parley:room:lobby:members", "alice"), "0")
        self.assertEqual(redis_cli(self.env.redis, "SISMEMBER", "parley:instances", "doomed"), "0")
        self.assertEqual(redis_cli(self.env.redis, "EXISTS", "parley:instance:doomed:presence"), "0")
        self.assertIn("leave", [e["json"]["event"] for e in watcher.events if e.get("event") == "presence"])

    def test_presence_of_a_crashed_instance_back_under_its_id_is_taken_back(self):
        # The whole instance dies and is started again under the same
        # instance_id (systemd, a container's restart policy) before its
        # heartbeat expires: the heartbeat never lapses, so no instance
        # reaps the dead one's presence - the new one must take it back.
        a, watcher = self.watched_instance("phoenix")
        a.kill()
        a.start()
        leave = watcher.wait_events(2, kind="presence", timeout=10)[1]["json"]
        self.assertEqual((leave["event"], leave["user"]), ("leave", "alice"))
        self.assertEqual(self.members(), {"watcher": "1"})
        self.assertEqual(redis_cli(self.env.redis, "HLEN", "parley:instance:phoenix:presence"), "0")
        # The new incarnation's own presence is kept.
        self.stream(a, session(a, "bob"))
        wait_for(lambda: self.members() == {"watcher": "1", "bob": "1"}, what="bob present")

    def test_presence_field_names_run_worker_room_and_user_in_full(self):
        a = self.env.parleyd({"workers": "1", "instance_id": "fields"})
        room, user = "r" * 64, "u" * 64
        self.stream(a, session(a, user), room=room)
        run = re.search(r"event=starting .* run=([0-9a-f]{16})", a.log()).group(1)
        field = "%s.%d|%s|%s" % (run, a.workers()[0], room, user)
        wait_for(lambda: redis_cli(self.env.redis, "HKEYS", "parley:instance:fields:presence") == field,
                 what="the presence field")

    def test_graceful_stop_takes_presence_back(self):
        a = self.env.parleyd({"workers": "2", "instance_id": "leaving"})
        self.stream(a, session(a, "alice"))
        wait_for(lambda: redis_cli(self.env.redis, "HGET", "parley:room:lobby:members", "alice") == "1",
                 what="alice present")
        self.assertEqual(a.stop(), 0)
        self.assertEqual(redis_cli(self.env.redis, "HEXISTS", "parley:room:lobby:members", "alice"), "0")
        self.assertEqual(redis_cli(self.env.redis, "EXISTS", "parley:instance:leaving"), "0")
        self.assertEqual(redis_cli(self.env.redis, "SISMEMBER", "parley:instances", "leaving"), "0")


if __name__ == "__main__":
    unittest.main()
