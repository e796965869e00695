"""Descriptor limits: a worker at its connection cap, or out of file
descriptors, stops accepting instead of spinning, logs it at most once a
second, and serves again once connections go (real parleyd, real limits)."""

import os
import re
import socket
import time
import unittest

from harness import Env, SLOW, wait_for

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User plus system CPU time PID has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def metric(p, name):
    """The value of the one series of /metrics whose text starts with NAME."""
    status, _, body = p.request("GET", "/metrics")
    assert status == 200, status
    for line in body.decode().splitlines():
        if line.startswith(name):
            return float(line.split()[-1])
    raise AssertionError("no %s in /metrics" % name)


def open_idle(port, n):
    """N connections that never send a byte."""
    socks = []
    for _ in range(n):
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW))
    return socks


def close_all(socks):
    for s in socks:
        s.close()


def get_on(sock, path="/healthz", close=True):
    sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, "Connection: close\r\n" if close else "")).encode())


def status_of(sock):
    """The status code of the response on SOCK (socket.timeout if none comes)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError("connection closed without an answer: %r" % data)
        data += chunk
    return int(data.split()[1])


class Limits(unittest.TestCase):
    def setUp(self):
        self.env = Env()
        self.addCleanup(self.env.close)
        self.socks = []
        self.addCleanup(lambda: close_all(self.socks))

    def assert_quiet_while_held(self, p, worker, what):
        """Over 2 s: little CPU, a log that barely grows, nothing from libevent."""
        time.sleep(0.5 * SLOW)              # let the worker meet the limit
        size, cpu, t0 = os.path.getsize(p.logpath), cpu_seconds(worker), time.monotonic()
        time.sleep(2.0)
        cpu_used = cpu_seconds(worker) - cpu
        grown = os.path.getsize(p.logpath) - size
        self.assertLess(cpu_used, 0.25 * (time.monotonic() - t0), "worker spins: %.2f s of CPU" % cpu_used)
        self.assertLess(grown, 2048, "log grew %d bytes in 2 s" % grown)
        foreign = [line for line in p.log().splitlines() if not line.startswith("ts=")]
        self.assertEqual(foreign, [], "lines not from parley's log (libevent's?)")
        p.wait_log(what)

    def assert_serves_again(self, p):
        close_all(self.socks)
        wait_for(lambda: p.request("GET", "/healthz", timeout=1.0)[0] == 200, timeout=10.0,
                 what="served again")

    def test_descriptor_limit_caps_connections(self):
        p = self.env.parleyd({"workers": "1"}, nofile=128)
        worker = p.workers()[0]
        self.socks = open_idle(p.port, 300)
        self.assert_quiet_while_held(p, worker, r"level=warn .*event=connection_limit ")
        self.assert_serves_again(p)
        cap = metric(p, 'parley_worker_connections_max{worker="0"')
        self.assertGreater(cap, 10)
        self.assertLess(cap, 128)
        p.wait_log(r"event=limits nofile=128 max_connections=%d" % cap)
        p.wait_log(r"event=connection_limit connections=%d max_connections=%d times=1" % (cap, cap))
        self.assertGreaterEqual(metric(p, 'parley_accept_paused_total{reason="max_connections"}'), 1)
        self.assertEqual(p.workers(), [worker])

    def test_out_of_descriptors_pauses_accepting(self):
        # Each download of a large file to a client that does not read holds
        # two descriptors (socket and file), so the worker runs out of
        # descriptors below its connection cap: accept fails with EMFILE.
        root = os.path.join(self.env.tmpdir, "web")
        os.makedirs(root)
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.truncate(32 << 20)
        p = self.env.parleyd({"workers": "1", "web_root": root}, nofile=80)
        worker = p.workers()[0]
        # One at a time, each download under way before the next connects,
        # until a connection gets no answer: the worker cannot accept it.
        for _ in range(60):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(5 * SLOW)
            s.connect(("127.0.0.1", p.port))
            self.socks.append(s)
            get_on(s, "/big.bin", close=False)
            s.settimeout(1.0 * SLOW)
            try:
                self.assertEqual(status_of(s), 200)
            except socket.timeout:
                break
        self.assert_quiet_while_held(p, worker, r"level=error .*event=accept_failed .*errno=24")
        self.assert_serves_again(p)
        self.assertLess(len(self.socks), metric(p, 'parley_worker_connections_max{worker="0"'),
                        "descriptors ran out below max_connections")
        self.assertGreaterEqual(metric(p, 'parley_accept_paused_total{reason="accept_error"}'), 1)

    def test_max_connections_holds_the_next_one_back(self):
        p = self.env.parleyd({"workers": "1", "max_connections": "4"})
        self.assertEqual(metric(p, 'parley_worker_connections_max{worker="0"'), 4)
        self.socks = open_idle(p.port, 4)
        time.sleep(0.3 * SLOW)
        fifth = socket.create_connection(("127.0.0.1", p.port), timeout=5 * SLOW)
        self.addCleanup(fifth.close)
        get_on(fifth)
        fifth.settimeout(1.0)
        with self.assertRaises(socket.timeout):
            status_of(fifth)            # accepted by the kernel, waiting for the worker
        self.socks.pop().close()
        fifth.settimeout(5 * SLOW)
        self.assertEqual(status_of(fifth), 200)

    def test_max_connections_above_the_limit_is_lowered_once(self):
        p = self.env.parleyd({"workers": "2", "max_connections": "100000"}, nofile=256)
        lowered = re.findall(r"level=warn .*event=max_connections_lowered configured=100000 "
                             r"max_connections=(\d+) nofile=256", p.log())
        self.assertEqual(len(lowered), 1, p.log())
        self.assertLess(int(lowered[0]), 256)
        self.assertEqual(metric(p, 'parley_worker_connections_max{worker="1"'), int(lowered[0]))


if __name__ == "__main__":
    unittest.main()
