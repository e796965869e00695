"""The prefork master: spreading, respawn, graceful stop, reload, log reopen
and systemd notification, on the real binary."""

import collections
import errno
import os
import signal
import socket
import threading
import time
import unittest

from harness import Env, SLOW, port_is_open, session, wait_for
from wsclient import WSClient


def serving_pid(p):
    """The pid of the worker that answered one request on a new connection."""
    status, _, body = p.get_json("/healthz")
    assert status == 200, status
    return body["pid"]


class Master(unittest.TestCase):
    def setUp(self):
        self.env = Env()
        self.addCleanup(self.env.close)

    def test_connections_spread_over_workers(self):
        p = self.env.parleyd({"workers": "2"})
        counts = collections.Counter(serving_pid(p) for _ in range(200))
        self.assertEqual(set(counts), set(p.workers()))
        # SO_REUSEPORT hashes connections; 200 of them put well over 25% on each.
        self.assertGreater(min(counts.values()), 50, counts)

    def test_killed_worker_is_respawned_within_a_second(self):
        p = self.env.parleyd({"workers": "2"})
        before = p.workers()
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        wait_for(lambda: len(p.workers()) == 2 and victim not in p.workers(), timeout=1.0,
                 what="respawn")
        # The new worker serves, and the master lived through it.
        replacement = (set(p.workers()) - set(before)).pop()
        wait_for(lambda: replacement in {serving_pid(p) for _ in range(20)}, timeout=1.0,
                 what="replacement serving")
        self.assertLess(time.monotonic() - t0, 1.0 * SLOW)
        self.assertIsNone(p.proc.poll())
        p.wait_log(r"event=worker_died worker=\d pid=%d status=\"signal 9 \(Killed\)\"" % victim)
        status, _, body = p.request("GET", "/metrics")
        restarts = [l for l in body.decode().splitlines() if l.startswith("parley_worker_restarts_total")]
        self.assertEqual(sum(float(l.split()[-1]) for l in restarts), 1.0)

    def test_worker_that_keeps_dying_is_backed_off(self):
        p = self.env.parleyd({"workers": "1"})
        for attempt in range(3):
            victim = p.workers()[0]
            os.kill(victim, signal.SIGKILL)
            # One listing per look: a second one may find the worker gone.
            wait_for(lambda: (p.workers() or [victim])[0] != victim, timeout=3.0, what="respawn")
        # Three young deaths in a row: immediate, then 250 ms, then 500 ms.
        p.wait_log(r"event=worker_respawn worker=0 delay_ms=0 failures=1")
        p.wait_log(r"event=worker_respawn worker=0 delay_ms=250 failures=2")
        p.wait_log(r"event=worker_respawn worker=0 delay_ms=500 failures=3")
        self.assertIsNone(p.proc.poll())
        wait_for(lambda: serving_pid(p), what="serving again")

    def test_sigterm_graceful_exit_0(self):
        p = self.env.parleyd({"workers": "2", "shutdown_timeout": "3s"})
        workers = p.workers()
        t0 = time.monotonic()
        self.assertEqual(p.stop(), 0)
        self.assertLess(time.monotonic() - t0, 3.0 * SLOW)
        self.assertFalse(port_is_open(p.port))
        for pid in workers:
            self.assertFalse(os.path.exists("/proc/%d" % pid) and
                             open("/proc/%d/stat" % pid).read().split()[2] != "Z")
        self.assertIn("event=stopped", p.log())

    def test_sigint_graceful_exit_0(self):
        p = self.env.parleyd({"workers": "1"})
        p.signal(signal.SIGINT)
        self.assertEqual(p.proc.wait(10 * SLOW), 0)

    def test_sigterm_with_half_sent_request(self):
        # A client that sent half a request keeps its connection; the worker
        # still stops within shutdown_timeout and the master exits 0.
        p = self.env.parleyd({"workers": "1", "shutdown_timeout": "1s"})
        s = socket.create_connection(("127.0.0.1", p.port))
        self.addCleanup(s.close)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.1)
        t0 = time.monotonic()
        self.assertEqual(p.stop(), 0)
        self.assertLess(time.monotonic() - t0, 3.0 * SLOW)

    def test_stopping_instance_refuses_new_connections(self):
        # A WebSocket client that never answers the server's close keeps its
        # worker draining; meanwhile no worker serves the port any more, so a
        # new connection must be refused at once (a load balancer then tries
        # another instance), not accepted by the kernel and reset later.
        p = self.env.parleyd({"workers": "1", "shutdown_timeout": "5s"})
        ws = WSClient.connect(p.port, "/ws/chat/lobby?token=" + session(p, "alice"), timeout=10 * SLOW)
        self.addCleanup(ws.shutdown)
        self.assertEqual(ws.recv_json()["type"], "welcome")
        idle = socket.create_connection(("127.0.0.1", p.port), timeout=5 * SLOW)
        self.addCleanup(idle.close)
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b" 200 ", idle.recv(4096))
        busy = socket.create_connection(("127.0.0.1", p.port), timeout=5 * SLOW)
        self.addCleanup(busy.close)
        busy.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.1)
        p.signal(signal.SIGTERM)
        p.wait_log(r"event=draining", count=1)
        # An idle keep-alive connection is closed at once (a proxy pooling
        # it learns now); a request under way is answered, and told to go.
        self.assertEqual(idle.recv(4096), b"")
        busy.sendall(b"Host: x\r\n\r\n")
        answer = busy.recv(4096)
        self.assertIn(b" 503 ", answer.split(b"\r\n")[0])
        self.assertIn(b"Connection: close\r\n", answer)
        for _ in range(20):
            s = socket.socket()
            s.settimeout(1.0)
            try:
                self.assertEqual(s.connect_ex(("127.0.0.1", p.port)), errno.ECONNREFUSED)
            finally:
                s.close()
        self.assertIsNone(p.proc.poll(), "the test needs a worker still draining")
        self.assertEqual(p.proc.wait(10 * SLOW), 0)

    def test_master_killed_takes_workers_down(self):
        p = self.env.parleyd({"workers": "2"})
        workers = p.workers()
        p.signal(signal.SIGKILL)
        p.proc.wait()

        def gone():
            return all(not os.path.exists("/proc/%d" % w) for w in workers)
        wait_for(gone, timeout=5.0, what="orphaned workers to exit")

    def test_sighup_with_broken_config_keeps_serving(self):
        p = self.env.parleyd({"workers": "2"})
        workers = p.workers()
        p.write_config(extra_lines="wrokers = 3\n")
        p.signal(signal.SIGHUP)
        p.wait_log(r"event=reload_failed reason=\"%s:\d+: unknown key 'wrokers'\"" % p.conf)
        self.assertEqual(p.workers(), workers)
        self.assertEqual(serving_pid(p) in workers, True)
        self.assertIsNone(p.proc.poll())

    def test_sighup_applies_new_worker_count(self):
        p = self.env.parleyd({"workers": "2"})
        old = set(p.workers())
        p.write_config({"workers": "3"})
        p.signal(signal.SIGHUP)
        p.wait_log(r"event=ready listen=\S+ workers=3 generation=2")
        wait_for(lambda: len(p.workers()) == 3 and not (set(p.workers()) & old), what="old workers gone")
        status, _, body = p.get_json("/healthz")
        self.assertEqual(body["workers"], 3)
        counts = collections.Counter(serving_pid(p) for _ in range(150))
        self.assertEqual(set(counts), set(p.workers()))

    def test_reload_refuses_no_connection(self):
        p = self.env.parleyd({"workers": "2"})
        failures = []
        done = threading.Event()
        served = [0]

        def hammer():
            while not done.is_set():
                try:
                    serving_pid(p)
                    served[0] += 1
                except Exception as e:  # noqa: BLE001 - any failure counts
                    failures.append(repr(e))

        t = threading.Thread(target=hammer)
        t.start()
        try:
            for gen, workers in ((2, 1), (3, 2), (4, 3)):
                p.write_config({"workers": str(workers)})
                p.signal(signal.SIGHUP)
                p.wait_log(r"event=ready listen=\S+ workers=%d generation=%d" % (workers, gen))
                time.sleep(0.3)
        finally:
            done.set()
            t.join()
        self.assertEqual(failures, [])
        self.assertGreater(served[0], 50)

    def test_sighup_changes_listen_address(self):
        p = self.env.parleyd({"workers": "1"})
        old_port = p.port
        p.write_config({"listen": "127.0.0.2:0"})
        p.signal(signal.SIGHUP)
        p.wait_log(r"event=listening addr=127.0.0.2:(\d+)")
        p.wait_log(r"event=ready listen=127.0.0.2:\d+ workers=1 generation=2")
        wait_for(lambda: not port_is_open(old_port), what="old address closed")

    def test_sigusr1_reopens_log_file(self):
        logfile = os.path.join(self.env.tmpdir, "parley.log")
        p = self.env.parleyd({"workers": "1", "log_file": logfile}, start=False)
        p.start(wait_ready=False)
        wait_for(lambda: os.path.exists(logfile) and "event=ready" in open(logfile).read(),
                 what="ready in log file")
        rotated = logfile + ".1"
        os.rename(logfile, rotated)
        p.signal(signal.SIGUSR1)
        wait_for(lambda: os.path.exists(logfile), what="log file reopened")
        # A request logged by the worker lands in the new file.
        import re
        port = int(re.search(r"event=listening addr=\S+:(\d+)", open(rotated).read()).group(1))
        p.port = port
        rid = p.request("GET", "/nope")[1]["x-request-id"]
        wait_for(lambda: rid in open(logfile).read(), what="request logged in new file")
        self.assertNotIn(rid, open(rotated).read())

    def test_systemd_notify(self):
        path = os.path.join(self.env.tmpdir, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(10 * SLOW)
        self.addCleanup(sock.close)
        p = self.env.parleyd({"workers": "2"}, env={"NOTIFY_SOCKET": path})

        def expect(prefix):
            while True:
                msg = sock.recv(4096).decode()
                if msg.startswith(prefix):
                    return msg

        self.assertIn("STATUS=serving on 127.0.0.1:%d with 2 workers" % p.port, expect("READY=1"))
        p.signal(signal.SIGHUP)
        expect("RELOADING=1")
        expect("READY=1")
        p.signal(signal.SIGTERM)
        expect("STOPPING=1")
        self.assertEqual(p.proc.wait(10 * SLOW), 0)


if __name__ == "__main__":
    unittest.main()
