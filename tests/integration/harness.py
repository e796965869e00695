"""harness.py - start real redis-server, parleyd and haproxy processes for the
tests.

Every process started here is recorded and stopped by its PID when the test
that started it ends, and again at interpreter exit, whatever happened."""

import atexit
import base64
import hashlib
import hmac
import http.client
import importlib.util
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
# The source tree: the shipped etc/haproxy.cfg and tests/haproxy_conf.py.
SRCDIR = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# Sanitizer builds are several times slower; scale waits, never assertions.
SLOW = float(os.environ.get("PARLEY_TEST_SLOW", "1"))

_live = []

# The application backend's key: every parleyd of the tests accepts it, so
# session() mints sessions as a backend would (open sign-in stays off unless
# a test turns it on).
SESSION_KEY = "test-session-key-0123456789abcdef0123456789abcdef"

# What AddressSanitizer, LeakSanitizer and UBSan print when they find a bug.
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error: |SUMMARY: \w+Sanitizer")


_proxies = []                   # HAProxys, whose workers outlive a killed master


def _stop_all():
    for h in list(_proxies):
        h.stop()
    for proc in list(_live):
        kill(proc)


atexit.register(_stop_all)


def kill(proc):
    """SIGKILL to a process started here (its Popen), and waits for it."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    if proc in _live:
        _live.remove(proc)


def children(pid):
    """{pid: process name} of process PID's children."""
    out = {}
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            pids = [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return out
    for child in pids:
        try:
            with open("/proc/%d/comm" % child) as f:
                out[child] = f.read().strip()
        except OSError:
            pass            # it exited meanwhile (ENOENT or ESRCH)
    return out


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
            kill(self.proc)


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
        kill(self.proc)
        self._log.close()
        return code

    def kill(self):
        """SIGKILL to the master and its children (workers, bus), each by
        PID, as when the whole instance dies; returns their PIDs."""
        pids = [self.proc.pid] + list(self.children())
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        kill(self.proc)
        self._log.close()
        return pids

    def children(self):
        """{pid: process name} of the master's children."""
        return children(self.proc.pid)

    def workers(self):
        """PIDs of the worker processes."""
        return sorted(pid for pid, name in self.children().items() if name.startswith("parley-w"))

    def bus_pid(self):
        """PID of the bus process, or None."""
        pids = [pid for pid, name in self.children().items() if name == "parley-bus"]
        return pids[0] if pids else None

    def request(self, method, path, body=None, headers=None, timeout=5.0):
        """One request on a new connection: (status, headers dict, body bytes)."""
        return request(self.port, method, path, body, headers, timeout)

    def get_json(self, path):
        status, headers, body = self.request("GET", path)
        return status, headers, json.loads(body)


class Env:
    """A temporary directory plus the processes of one test."""

    def __init__(self):
        self.tmpdir = tempfile.mkdtemp(prefix="parley-test-")
        self.procs = []
        self.proxies = []
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

    def haproxy(self, servers, start=True):
        """HAProxy with the shipped configuration in front of SERVERS,
        [(name, port)]; see Haproxy."""
        h = Haproxy(tempfile.mkdtemp(dir=self.tmpdir), servers)
        self.proxies.append(h)
        if start:
            h.start()
        return h

    def close(self):
        """Stops everything; fails if a sanitizer reported anything."""
        for h in self.proxies:
            h.stop()
        reports = []
        for p in self.procs:
            if p.proc is not None:
                kill(p.proc)
                reports += [line for line in p.log().splitlines() if SANITIZER_REPORT.search(line)]
        if self.redis:
            self.redis.stop()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        if reports:
            raise AssertionError("sanitizer reports from parleyd:\n" + "\n".join(reports[:20]))


def request(port, method, path, body=None, headers=None, timeout=5.0, source=None):
    """One request to 127.0.0.1:PORT on a new connection (from the local
    address SOURCE if given): (status, headers dict, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SLOW,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def spawn(argv, **popen_args):
    """A helper process (a client, a load generator), stopped by PID when
    the test process ends if nobody did it before (stop it with kill())."""
    proc = subprocess.Popen(argv, **popen_args)
    _live.append(proc)
    return proc


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


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _haproxy_conf():
    """tests/haproxy_conf.py, which derives a runnable copy of etc/haproxy.cfg."""
    path = os.path.join(SRCDIR, "tests", "haproxy_conf.py")
    spec = importlib.util.spec_from_file_location("haproxy_conf", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Haproxy:
    """HAProxy in master-worker mode running the shipped etc/haproxy.cfg
    (made runnable by tests/haproxy_conf.py, nothing else changed) in front
    of SERVERS, [(name, port)] of parleyd instances on 127.0.0.1: TLS with
    HTTP/2 on self.https, plain HTTP/1.1 on self.http, a self-signed
    certificate made here.  Its log (every process of this HAProxy, old
    workers after a reload included) goes to its own file, self.logpath."""

    def __init__(self, tmpdir, servers):
        self.dir = tmpdir
        self.servers = list(servers)
        self.https, self.http, self.stats = free_port(), free_port(), free_port()
        self.cfg = os.path.join(tmpdir, "haproxy.cfg")
        self.pem = os.path.join(tmpdir, "tls.pem")
        self.master_socket = os.path.join(tmpdir, "master.sock")
        self.admin_socket = os.path.join(tmpdir, "admin.sock")
        self.logpath = os.path.join(tmpdir, "haproxy.log")
        self.proc = None
        self._log = None
        self._make_certificate()
        self._write_config()

    def _make_certificate(self):
        key, crt = os.path.join(self.dir, "tls.key"), os.path.join(self.dir, "tls.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", crt],
                       check=True, capture_output=True, timeout=30)
        # HAProxy wants the certificate and its key in one file.
        with open(self.pem, "wb") as out:
            for part in (crt, key):
                with open(part, "rb") as f:
                    out.write(f.read())

    def _write_config(self):
        with open(os.path.join(SRCDIR, "etc", "haproxy.cfg")) as f:
            shipped = f.read()
        text = _haproxy_conf().derive(shipped, "127.0.0.1:%d" % self.https, "127.0.0.1:%d" % self.http,
                                      "127.0.0.1:%d" % self.stats, self.pem, self.admin_socket,
                                      [(name, "127.0.0.1:%d" % port) for name, port in self.servers])
        with open(self.cfg, "w") as f:
            f.write(text)
        check = subprocess.run(["haproxy", "-c", "-q", "-f", self.cfg], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise AssertionError("haproxy -c refused the derived configuration:\n" + check.stdout + check.stderr)

    def start(self, wait_up=True):
        """Starts HAProxy and waits until both fronts accept connections
        and, with WAIT_UP, every server is in the pool."""
        self._log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(["haproxy", "-W", "-db", "-f", self.cfg, "-S", self.master_socket],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        _live.append(self.proc)
        _proxies.append(self)

        def serving():
            if self.proc.poll() is not None:
                raise AssertionError("haproxy exited %s:\n%s" % (self.proc.returncode, self.log()))
            return (os.path.exists(self.admin_socket) and port_is_open(self.http)
                    and port_is_open(self.https) and self._answers(self.master_socket))
        wait_for(serving, timeout=10, what="haproxy to serve")
        if wait_up:
            self.wait_servers(up=[name for name, _ in self.servers])
        return self

    def log(self):
        with open(self.logpath, "r", errors="replace") as f:
            return f.read()

    def request(self, method, path, body=None, headers=None, timeout=5.0, source=None):
        """One request through the plain HTTP/1.1 front (see request())."""
        return request(self.http, method, path, body, headers, timeout, source)

    @staticmethod
    def _command(path, line, timeout=5.0):
        """One command on a HAProxy CLI socket; its whole answer."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout * SLOW)
        try:
            s.connect(path)
            s.sendall(line.encode() + b"\n")
            # The master CLI answers and closes only once our side is closed.
            s.shutdown(socket.SHUT_WR)
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                out += chunk
            return out.decode(errors="replace")
        finally:
            s.close()

    def _answers(self, path):
        try:
            return bool(self._command(path, "help"))
        except OSError:
            return False

    def master(self, line):
        """A command on the master CLI (-S): show proc, reload, ..."""
        return self._command(self.master_socket, line)

    def admin(self, line):
        """A command on the current worker's runtime API (stats socket)."""
        return self._command(self.admin_socket, line)

    def server_states(self):
        """{server name: True while HAProxy sends it requests} of be_rooms
        (be_parley's servers track these)."""
        out = {}
        for line in self.admin("show servers state be_rooms").splitlines():
            f = line.split()
            if len(f) > 6 and not line.startswith("#") and f[1] == "be_rooms":
                out[f[3]] = f[5] == "2"         # srv_op_state 2: running
        return out

    def wait_servers(self, up=(), down=(), timeout=10.0):
        """Waits until the servers named in UP are in the pool and those in
        DOWN are out of it (health checks: 1-2 s either way)."""
        def reached():
            states = self.server_states()
            return all(states.get(n) is True for n in up) and all(states.get(n) is False for n in down)
        wait_for(reached, timeout, interval=0.05, what="haproxy servers up=%s down=%s" % (list(up), list(down)))

    def processes(self):
        """show proc, parsed: {"reloads": N, "failed": N, "workers": [pid],
        "old_workers": [pid]} (failed counts reloads that did not load)."""
        text = self.master("show proc")
        out = {"reloads": None, "failed": None, "workers": [], "old_workers": []}
        section = None
        for line in text.splitlines():
            if line.startswith("# workers"):
                section = "workers"
            elif line.startswith("# old workers"):
                section = "old_workers"
            elif line.startswith("#"):
                section = None
            f = line.split()
            if len(f) > 2 and f[1] == "master":
                m = re.search(r"(\d+)\s+\[failed: (\d+)\]", line)
                out["reloads"], out["failed"] = int(m.group(1)), int(m.group(2))
            elif section and len(f) > 1 and f[1] == "worker":
                out[section].append(int(f[0]))
        if out["reloads"] is None:
            raise AssertionError("unexpected show proc answer:\n" + text)
        return out

    def reload(self, timeout=10.0):
        """Reloads through the master CLI, as "systemctl reload" does, and
        waits until a new worker serves; fails unless show proc counts the
        reload as loaded (the command itself prints nothing either way).
        Returns show proc after the reload."""
        before = self.processes()
        self.master("reload")

        def done():
            try:
                now = self.processes()
            except (OSError, AssertionError):
                return None             # the master is re-executing itself
            return now if now["reloads"] > before["reloads"] and now["workers"] else None
        after = wait_for(done, timeout, interval=0.05, what="haproxy reload")
        if after["failed"] != before["failed"] or set(after["workers"]) & set(before["workers"]):
            raise AssertionError("haproxy reload failed: %r -> %r\n%s" % (before, after, self.log()[-3000:]))
        return after

    def stop(self, timeout=10.0):
        """SIGTERM to the master (it stops its workers), by PID; then
        SIGKILL to whatever of it is left, workers by PID too (they outlive
        a master that was killed)."""
        if self.proc is None:
            return
        workers = [pid for pid, name in children(self.proc.pid).items() if name == "haproxy"]
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                pass
        kill(self.proc)
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass            # it ended with its master
        self._log.close()
        self.proc = None
        _proxies.remove(self)


class SSEClient:
    """A real event-stream reader on a raw socket: parses "id:", "event:",
    "data:" and comments into a list of events, from a background thread."""

    def __init__(self, port, path, headers=None, timeout=10.0):
        import threading
        self._file = self._open(port, path, headers or {}, timeout)
        self.events = []            # dicts with id, event, data (parsed JSON when possible), t
        self.comments = 0
        self.ended = False          # the stream ended from the server's side (not a read timeout)
        self.comment_times = []     # when each comment (": ping") arrived
        self.status = None
        self.status_line = None     # "HTTP/1.1 200 OK", or curl's "HTTP/2 200"
        self.headers = {}
        self.retry = None
        self.closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self, port, path, headers, timeout):
        """Sends the request; returns the response as a binary file."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
        lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += ["%s: %s" % kv for kv in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return self.sock.makefile("rb")

    def _run(self):
        f = self._file
        try:
            self.status_line = f.readline().decode().strip()
            self.status = int(self.status_line.split()[1])
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
                    self.comment_times.append(time.monotonic())
                else:
                    k, _, v = line.partition(":")
                    v = v[1:] if v.startswith(" ") else v
                    if k == "retry":
                        self.retry = int(v)
                    elif k == "data":
                        event["data"] = event["data"] + "\n" + v if "data" in event else v
                    else:
                        event[k] = v
            self.ended = True       # the server closed the stream
        except socket.timeout:
            pass                    # closed, but by the reader's timeout
        except (OSError, ValueError):
            self.ended = True
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
        # The reader's file holds the descriptor too: the connection really
        # ends (and a proxy sees it end) only once both are closed.
        self._file.close()


class CurlSSEClient(SSEClient):
    """The same reader on an event stream that curl fetches over HTTP/2
    with TLS (any certificate accepted) from https://127.0.0.1:PORT: what
    a browser's EventSource does through the TLS front.  curl -N passes
    every byte on as it arrives."""

    def _open(self, port, path, headers, timeout):
        argv = ["curl", "-sk", "--http2", "-N", "-i", "--max-time", str(int(60 * SLOW)),
                "-H", "Accept: text/event-stream"]
        for kv in headers.items():
            argv += ["-H", "%s: %s" % kv]
        self.curl = spawn(argv + ["https://127.0.0.1:%d%s" % (port, path)],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return self.curl.stdout

    def close(self):
        kill(self.curl)
        self._thread.join(5)
        self.curl.stdout.close()


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


def redis_call(redis, *args):
    """One command to REDIS on its socket, the reply parsed (RESP2): a
    str, an int, None or a list of those; an error reply raises."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10 * SLOW)
    try:
        s.connect(redis.socket)
        parts = [str(a).encode() for a in args]
        s.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        with s.makefile("rb") as f:
            return _resp_read(f)
    finally:
        s.close()


def _resp_read(f):
    line = f.readline()
    kind, rest = line[:1], line[1:].rstrip(b"\r\n")
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise AssertionError("redis error: " + rest.decode())
    if kind == b":":
        return int(rest)
    if kind in (b"$", b"*") and int(rest) < 0:
        return None
    if kind == b"$":
        return f.read(int(rest) + 2)[:-2].decode()
    if kind == b"*":
        return [_resp_read(f) for _ in range(int(rest))]
    raise AssertionError("unexpected reply from redis: %r" % line)


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
