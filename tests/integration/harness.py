"""harness.py - start real redis-server and parleyd processes for the tests.

Every process started here is recorded and stopped by its PID when the test
that started it ends, and again at interpreter exit, whatever happened."""

import atexit
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import resource
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

# The application backend's key: every parleyd of the tests accepts it, so
# session() mints sessions as a backend would (open sign-in stays off unless
# a test turns it on).
SESSION_KEY = "test-session-key-0123456789abcdef0123456789abcdef"

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
        self.dir = tmpdir           # where SHUTDOWN SAVE writes (and start reloads)
        self.socket = os.path.join(tmpdir, "redis.sock")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.socket,
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--loglevel", "warning", "--dir", self.dir],
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

    def __init__(self, tmpdir, settings=None, args=None, env=None, nofile=None):
        self.tmpdir = tmpdir
        self.conf = os.path.join(tmpdir, "parley.conf")
        self.logpath = os.path.join(tmpdir, "parleyd.log")
        # Tests publish in bursts: no rate limit unless a test asks for one.
        keyfile = os.path.join(tmpdir, "session.key")
        with open(keyfile, "w") as f:
            f.write(SESSION_KEY + "\n")
        self.settings = {"listen": "127.0.0.1:0", "workers": "2", "log_level": "info",
                         "shutdown_timeout": "5s", "drain_spread": "0", "rate_limit": "0",
                         "session_key_file": keyfile}
        self.settings.update(settings or {})
        self.args = args or []
        self.env = env
        self.nofile = nofile        # RLIMIT_NOFILE (soft and hard) of parleyd, or None
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
        before = len(re.findall(r"event=ready ", self.log())) if os.path.exists(self.logpath) else 0
        self._log = open(self.logpath, "ab")
        env = dict(os.environ)
        env.update(self.env or {})
        limit = None
        if self.nofile is not None:
            def limit():
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        self.proc = subprocess.Popen([PARLEYD, "-c", self.conf] + self.args,
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=limit)
        _live.append(self.proc)
        if wait_ready:
            # The log may hold an earlier run's lines (a restart): wait for one more.
            self.wait_log(r"event=ready ", count=before + 1, what="parleyd ready")
            self.port = int(re.findall(r"event=listening addr=\S+:(\d+)", self.log())[-1])
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

    def children(self):
        """{pid: process name} of the master's children."""
        path = "/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)
        out = {}
        try:
            with open(path) as f:
                pids = [int(p) for p in f.read().split()]
        except FileNotFoundError:
            return out
        for pid in pids:
            try:
                with open("/proc/%d/comm" % pid) as f:
                    out[pid] = f.read().strip()
            except OSError:
                pass            # it exited meanwhile (ENOENT or ESRCH)
        return out

    def workers(self):
        """PIDs of the worker processes."""
        return sorted(pid for pid, name in self.children().items() if name.startswith("parley-w"))

    def bus_pid(self):
        """PID of the bus process, or None."""
        pids = [pid for pid, name in self.children().items() if name == "parley-bus"]
        return pids[0] if pids else None

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
        if self.redis is None:
            self.start_redis()
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


class SSEClient:
    """A real event-stream reader on a raw socket: parses "id:", "event:",
    "data:" and comments into a list of events, from a background thread."""

    def __init__(self, port, path, headers=None, timeout=10.0):
        import threading
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
        lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += ["%s: %s" % kv for kv in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.events = []            # dicts with id, event, data (parsed JSON when possible), t
        self.comments = 0
        self.status = None
        self.headers = {}
        self.retry = None
        self.closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        f = self.sock.makefile("rb")
        try:
            status = f.readline().decode()
            self.status = int(status.split()[1])
            while True:
                line = f.readline().decode().rstrip("\r\n")
                if not line:
                    break
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
            if self.status != 200:
                self.body = f.read().decode(errors="replace")
                return
            event = {}
            for raw in f:
                line = raw.decode().rstrip("\n")
                if line == "":
                    if event:
                        with self._cond:
                            if "data" in event:
                                try:
                                    event["json"] = json.loads(event["data"])
                                except ValueError:
                                    pass
                            event["t"] = time.monotonic()     # arrival
                            self.events.append(event)
                            self._cond.notify_all()
                    event = {}
                elif line.startswith(":"):
                    self.comments += 1
                else:
                    k, _, v = line.partition(":")
                    v = v[1:] if v.startswith(" ") else v
                    if k == "retry":
                        self.retry = int(v)
                    elif k == "data":
                        event["data"] = event["data"] + "\n" + v if "data" in event else v
                    else:
                        event[k] = v
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self.closed = True
                self._cond.notify_all()

    def wait_events(self, n, timeout=10.0, kind=None):
        """Waits until N events (of type KIND) arrived; returns them."""
        deadline = time.monotonic() + timeout * SLOW
        with self._cond:
            while True:
                got = [e for e in self.events if kind is None or e.get("event") == kind]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise AssertionError("got %d of %d %s events (closed=%s)" % (len(got), n, kind or "", self.closed))
                self._cond.wait(left)

    def wait_ready(self, timeout=10.0):
        wait_for(lambda: self.status is not None, timeout, what="SSE response")
        return self.status

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(5)


def session(p, user, ttl=None):
    """Creates a session on parleyd P as the application backend does (with
    the session key); returns the token."""
    doc = {"user": user}
    if ttl is not None:
        doc["ttl"] = ttl
    status, _, body = p.request("POST", "/api/sessions", body=json.dumps(doc),
                                headers={"Content-Type": "application/json",
                                         "Authorization": "Bearer " + SESSION_KEY})
    assert status == 201, (status, body)
    return json.loads(body)["token"]


def publish(p, token, room, content, cmid=None):
    """Posts a message; returns (status, parsed body)."""
    doc = {"content": content}
    if cmid is not None:
        doc["client_msg_id"] = cmid
    status, _, body = p.request("POST", "/api/rooms/%s/messages" % room, body=json.dumps(doc),
                                headers={"Content-Type": "application/json",
                                         "Authorization": "Bearer " + token})
    return status, json.loads(body) if body else None


def redis_cli(redis, *args):
    r = subprocess.run(["redis-cli", "-s", redis.socket] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=10)
    return r.stdout.strip()


def jwt(claims, secret, alg="HS256", header=None):
    """A JWT of CLAIMS signed with HMAC-SHA256 under SECRET (ALG is only
    what the header claims, to test refusals).  HEADER replaces the header;
    either part may be bytes, used as the JSON text as it is."""
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def text(part):
        return part if isinstance(part, bytes) else json.dumps(part).encode()
    head = b64(text(header if header is not None else {"alg": alg, "typ": "JWT"}))
    body = b64(text(claims))
    sig = hmac.new(secret.encode(), (head + "." + body).encode(), hashlib.sha256).digest()
    return head + "." + body + "." + b64(sig)
