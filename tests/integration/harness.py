"""harness.py - start real redis-server and parleyd processes for the tests.

Every process started here is recorded and stopped by its PID when the test
that started it ends, and again at interpreter exit, whatever happened."""

import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PARLEYD = os.environ.get("PARLEYD", "parleyd")
# Sanitizer builds are several times slower; scale waits, never assertions.
SLOW = float(os.environ.get("PARLEY_TEST_SLOW", "1"))

_live = []

# What AddressSanitizer, LeakSanitizer and UBSan print when they find a bug.
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error: |SUMMARY: \w+Sanitizer")


def _stop_all():
    for proc in list(_live):
        _kill(proc)


atexit.register(_stop_all)


def _kill(proc):
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    if proc in _live:
        _live.remove(proc)


def wait_for(predicate, timeout=5.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout * SLOW
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


class Redis:
    """A private redis-server on a unix socket, with persistence off."""

    def __init__(self, tmpdir):
        self.socket = os.path.join(tmpdir, "redis.sock")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.socket,
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _live.append(self.proc)
        wait_for(lambda: os.path.exists(self.socket), what="redis socket")
        return self

    @property
    def url(self):
        return "unix:" + self.socket

    def stop(self):
        if self.proc:
            _kill(self.proc)


class Parleyd:
    """The real parleyd binary with a generated configuration file."""

    def __init__(self, tmpdir, settings=None, args=None, env=None):
        self.tmpdir = tmpdir
        self.conf = os.path.join(tmpdir, "parley.conf")
        self.logpath = os.path.join(tmpdir, "parleyd.log")
        self.settings = {"listen": "127.0.0.1:0", "workers": "2", "log_level": "info",
                         "shutdown_timeout": "5s"}
        self.settings.update(settings or {})
        self.args = args or []
        self.env = env
        self.proc = None
        self.port = None
        self._log = None
        self.write_config()

    def write_config(self, settings=None, extra_lines=""):
        if settings is not None:
            self.settings.update(settings)
        with open(self.conf, "w") as f:
            for key, value in self.settings.items():
                f.write("%s = %s\n" % (key, value))
            f.write(extra_lines)

    def start(self, wait_ready=True):
        self._log = open(self.logpath, "ab")
        env = dict(os.environ)
        env.update(self.env or {})
        self.proc = subprocess.Popen([PARLEYD, "-c", self.conf] + self.args,
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env)
        _live.append(self.proc)
        if wait_ready:
            self.wait_log(r"event=ready ", what="parleyd ready")
            m = re.search(r"event=listening addr=\S+:(\d+)", self.log())
            self.port = int(m.group(1))
        return self

    def log(self):
        with open(self.logpath, "r", errors="replace") as f:
            return f.read()

    def wait_log(self, pattern, count=1, timeout=10.0, what=None):
        def found():
            if self.proc.poll() is not None and self.proc.returncode != 0:
                raise AssertionError("parleyd exited %s:\n%s" % (self.proc.returncode, self.log()))
            return len(re.findall(pattern, self.log())) >= count
        return wait_for(found, timeout, what=what or pattern)

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def stop(self, timeout=15.0):
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                pass
        code = self.proc.poll()
        _kill(self.proc)
        self._log.close()
        return code

    def workers(self):
        """PIDs of the worker processes (children of the master)."""
        path = "/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)
        try:
            with open(path) as f:
                return sorted(int(p) for p in f.read().split())
        except FileNotFoundError:
            return []

    def request(self, method, path, body=None, headers=None, timeout=5.0):
        """One request on a new connection: (status, headers dict, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * SLOW)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def get_json(self, path):
        status, headers, body = self.request("GET", path)
        return status, headers, json.loads(body)


class Env:
    """A temporary directory plus the processes of one test."""

    def __init__(self):
        self.tmpdir = tempfile.mkdtemp(prefix="parley-test-")
        self.procs = []
        self.redis = None

    def start_redis(self):
        self.redis = Redis(self.tmpdir).start()
        return self.redis

    def parleyd(self, settings=None, start=True, **kw):
        settings = dict(settings or {})
        if self.redis is not None:
            settings.setdefault("redis", self.redis.url)
        sub = tempfile.mkdtemp(dir=self.tmpdir)
        p = Parleyd(sub, settings, **kw)
        self.procs.append(p)
        if start:
            p.start()
        return p

    def close(self):
        """Stops everything; fails if a sanitizer reported anything."""
        reports = []
        for p in self.procs:
            if p.proc is not None:
                _kill(p.proc)
                reports += [line for line in p.log().splitlines() if SANITIZER_REPORT.search(line)]
        if self.redis:
            self.redis.stop()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        if reports:
            raise AssertionError("sanitizer reports from parleyd:\n" + "\n".join(reports[:20]))


def run_parleyd(args, timeout=10):
    """Runs parleyd to completion (for --help, --check-config, failures)."""
    return subprocess.run([PARLEYD] + args, capture_output=True, text=True, timeout=timeout * SLOW)


def port_is_open(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        return s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        s.close()
