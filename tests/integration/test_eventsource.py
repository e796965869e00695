"""Resuming event streams: the seam between replay and live under load, and
a real EventSource client (npm `eventsource`) riding out a parleyd restart."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from harness import Env, SLOW, SSEClient, _live, publish, session, wait_for

CLIENT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "eventsource")


class Resume(unittest.TestCase):
    def setUp(self):
        self.env = Env()
        self.addCleanup(self.env.close)

    def test_resume_50_drop_20_then_30_more_with_a_second_publisher(self):
        p = self.env.parleyd({"workers": "2"})
        tok = session(p, "reader")
        other = session(p, "noise")
        first = SSEClient(p.port, "/api/rooms/seam/events?token=" + tok)
        self.addCleanup(first.close)
        first.wait_ready()
        time.sleep(0.2)
        ids = [publish(p, tok, "seam", "a%d" % i)[1]["id"] for i in range(50)]
        got = first.wait_events(50, kind="message")
        last_seen = got[19]["id"]           # the client "dropped" after 20
        first.close()

        # A second publisher keeps publishing throughout the reconnect.
        noise_ids, stop = [], threading.Event()

        def noise():
            while not stop.is_set():
                status, body = publish(p, other, "seam", "noise")
                if status == 201:
                    noise_ids.append(body["id"])
                time.sleep(0.002)

        t = threading.Thread(target=noise)
        t.start()
        try:
            ids += [publish(p, tok, "seam", "b%d" % i)[1]["id"] for i in range(30)]
            again = SSEClient(p.port, "/api/rooms/seam/events?token=" + tok,
                              headers={"Last-Event-ID": last_seen})
            self.addCleanup(again.close)
            again.wait_events(60, kind="message")
            time.sleep(0.3)
        finally:
            stop.set()
            t.join()
        final = publish(p, tok, "seam", "live")[1]["id"]
        all_ids = sorted(ids + noise_ids + [final], key=lambda x: tuple(map(int, x.split("-"))))
        want = [i for i in all_ids if tuple(map(int, i.split("-"))) > tuple(map(int, last_seen.split("-")))]
        got = [e["id"] for e in again.wait_events(len(want), kind="message")]
        # Every stored event after the id, in order: no gap, no duplicate at
        # the seam between replay and live, whatever the other publisher did.
        self.assertEqual(got, want)
        mine = [g for g in got if g in ids]
        self.assertEqual(mine, ids[20:])     # the 30 missed + the 30 new
        self.assertGreater(len(noise_ids), 0)


@unittest.skipUnless(shutil.which("node"), "node is not installed")
class HeartbeatSpread(unittest.TestCase):
    def setUp(self):
        self.env = Env()
        self.addCleanup(self.env.close)

    def test_streams_opened_together_are_not_woken_together(self):
        # Each stream's heartbeat period is shortened by up to a quarter.
        p = self.env.parleyd({"workers": "1", "sse_heartbeat": "2s"})
        streams = []
        for i in range(16):
            c = SSEClient(p.port, "/api/rooms/beat/events?token=" + session(p, "b%d" % i))
            self.addCleanup(c.close)
            self.assertEqual(c.wait_ready(), 200)
            streams.append((c, time.monotonic()))
        wait_for(lambda: all(c.comment_times for c, _ in streams), timeout=4, what="a heartbeat on every stream")
        delays = sorted(c.comment_times[0] - opened for c, opened in streams)
        # Unspread, every first heartbeat comes 2 s after its stream opened.
        self.assertLess(delays[0], 1.85, delays)
        self.assertGreater(delays[-1] - delays[0], 0.2, delays)


class RealEventSource(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Installed once, into a scratch copy when the tree is read-only
        # (make distcheck) or has no node_modules yet.
        cls.client_dir = CLIENT_DIR
        if not os.path.isdir(os.path.join(CLIENT_DIR, "node_modules", "eventsource")):
            cls.client_dir = tempfile.mkdtemp(prefix="parley-es-")
            for name in ("package.json", "package-lock.json", "client.js"):
                shutil.copy(os.path.join(CLIENT_DIR, name), cls.client_dir)
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=cls.client_dir,
                           check=True, timeout=300)

    @classmethod
    def tearDownClass(cls):
        if cls.client_dir != CLIENT_DIR:
            shutil.rmtree(cls.client_dir, ignore_errors=True)

    def setUp(self):
        self.env = Env()
        self.addCleanup(self.env.close)

    def start_client(self, url):
        proc = subprocess.Popen(["node", os.path.join(self.client_dir, "client.js"), url],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        _live.append(proc)
        self.addCleanup(lambda: (proc.kill(), proc.wait()))
        lines = []

        def reader():
            for line in proc.stdout:
                lines.append(json.loads(line))

        threading.Thread(target=reader, daemon=True).start()
        return lines

    def test_reconnects_after_restart_and_resumes_without_loss(self):
        a = self.env.parleyd({"workers": "2", "sse_retry_ms": "200"})
        b = self.env.parleyd({"workers": "1"})      # publishes while A is down
        tok = session(b, "es")
        lines = self.start_client("http://127.0.0.1:%d/api/rooms/es/events?token=%s" % (a.port, tok))
        wait_for(lambda: any(l["kind"] == "open" for l in lines), what="EventSource open")
        time.sleep(0.2)

        def messages():
            return [l for l in lines if l["kind"] == "event" and l["type"] == "message"]

        ids = [publish(b, tok, "es", "before %d" % i)[1]["id"] for i in range(5)]
        wait_for(lambda: len(messages()) == 5, what="5 live messages")
        port = a.port
        self.assertEqual(a.stop(), 0)
        ids += [publish(b, tok, "es", "while down %d" % i)[1]["id"] for i in range(5)]
        a.write_config({"listen": "127.0.0.1:%d" % port})
        a.start()
        wait_for(lambda: len(messages()) == 10, timeout=10, what="the 5 missed messages")
        ids += [publish(a, tok, "es", "after %d" % i)[1]["id"] for i in range(5)]
        wait_for(lambda: len(messages()) == 15, what="5 more live")
        self.assertEqual([m["id"] for m in messages()], ids)
        self.assertEqual([json.loads(m["data"])["content"] for m in messages()][5:10],
                         ["while down %d" % i for i in range(5)])
        self.assertGreaterEqual(sum(1 for l in lines if l["kind"] == "open"), 2)


if __name__ == "__main__":
    unittest.main()
