"""HTTP hygiene on the real parleyd: body and header limits, malformed
requests, slow clients, pipelining."""

import json
import os
import re
import socket
import time
import unittest

from harness import Env, SLOW, publish, redis_cli, session


def raw(port, data, timeout=5.0, read_until_close=True):
    """Sends DATA on a new connection; returns everything read until the
    server closes (or the timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if not read_until_close and b"\r\n\r\n" in out:
                break
        return out
    finally:
        s.close()


def exchange(port, data, timeout=3.0):
    """Sends DATA on a new connection and reads until the server closes it
    or TIMEOUT passes: (bytes read, whether the server closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    out = b""
    try:
        s.sendall(data)
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return out, False
            except ConnectionResetError:
                return out, True
            if not chunk:
                return out, True
            out += chunk
    finally:
        s.close()


def responses(data, head_first=False):
    """The responses in DATA, each (status, headers dict, body), framed by
    Content-Length (interim 1xx responses have no body, nor has the first
    when it answers a HEAD: HEAD_FIRST)."""
    out = []
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            return out
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode()] = value.strip().decode("latin-1")
        n = 0 if status < 200 or (head_first and not out) else int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:n]))
        data = rest[n:]


def status_of(response):
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else None


def body_of(response):
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


class OneParley(unittest.TestCase):
    """One parleyd for the class (1 worker and SETTINGS) and a session of USER."""
    settings = {}
    user = "tester"

    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.p = cls.env.parleyd(dict({"workers": "1"}, **cls.settings))
        cls.token = session(cls.p, cls.user)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()


class Hygiene(OneParley):
    settings = {"max_body": "2k", "max_header_size": "4k", "http_header_timeout": "1s"}
    user = "hy"

    def test_body_over_max_body_is_413_before_it_is_read(self):
        # Only the headers are sent: the answer must not wait for the body.
        head = ("POST /api/rooms/lobby/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Authorization: Bearer %s\r\nContent-Length: 1000000\r\n\r\n" % self.token).encode()
        t0 = time.monotonic()
        resp = raw(self.p.port, head)
        self.assertEqual(status_of(resp), 413, resp)
        self.assertLess(time.monotonic() - t0, 2 * SLOW)
        self.assertEqual(body_of(resp)["error"]["code"], "too_large")
        self.assertIn(b"X-Request-Id: ", resp)

    def post(self, body, extra=""):
        return ("POST /api/rooms/lobby/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Authorization: Bearer %s\r\n%sConnection: close\r\n\r\n" % (self.token, extra)).encode() + body

    def test_body_of_exactly_max_body_is_accepted(self):
        doc = json.dumps({"content": "hi", "pad": ""}).encode()
        exact = doc[:-1] + b" " * (2048 - len(doc)) + b"}"
        self.assertEqual(len(exact), 2048)
        resp = raw(self.p.port, self.post(exact, "Content-Length: 2048\r\n"))
        self.assertEqual(status_of(resp), 201, resp)
        resp = raw(self.p.port, self.post(exact + b" ", "Content-Length: 2049\r\n"))
        self.assertEqual(status_of(resp), 413, resp)

    def test_413_is_readable_while_the_body_keeps_coming(self):
        # The answer comes before the body is read; closing at once would
        # reset the connection and could destroy the answer (lingering close).
        for _ in range(3):
            resp = raw(self.p.port, self.post(b" " * 200000, "Content-Length: 200000\r\n"))
            self.assertEqual(status_of(resp), 413, resp)

    def test_chunked_body_over_max_body_is_413(self):
        chunks = b"".join(b"400\r\n" + b" " * 1024 + b"\r\n" for _ in range(3)) + b"0\r\n\r\n"
        resp = raw(self.p.port, self.post(chunks, "Transfer-Encoding: chunked\r\n"))
        self.assertEqual(status_of(resp), 413, resp)
        small = b'{"content":"chunked"}'
        resp = raw(self.p.port, self.post(b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small),
                                          "Transfer-Encoding: chunked\r\n"))
        self.assertEqual(status_of(resp), 201, resp)

    def test_invalid_or_conflicting_content_length_400(self):
        for extra in ("Content-Length: -1\r\n", "Content-Length: abc\r\n", "Content-Length: 5, 5\r\n",
                      "Content-Length:\r\n", "Content-Length: 5\r\nContent-Length: 22\r\n",
                      "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"):
            resp = raw(self.p.port, self.post(b"x" * 22, extra))
            self.assertEqual(status_of(resp), 400, (extra, resp))
            self.assertEqual(body_of(resp)["error"]["code"], "bad_request")
        resp = raw(self.p.port, self.post(b"", "Content-Length: 99999999999999999999\r\n"))
        self.assertEqual(status_of(resp), 413, resp)
        # The same length twice is one length.
        resp = raw(self.p.port, self.post(b'{"content":"x"}', "Content-Length: 15\r\nContent-Length: 15\r\n"))
        self.assertEqual(status_of(resp), 201, resp)

    def test_request_target_too_long_414(self):
        resp = raw(self.p.port, b"GET /healthz?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(status_of(resp), 414, resp)
        self.assertEqual(body_of(resp)["error"]["code"], "uri_too_long")

    def test_query_cut_by_read_boundaries_is_intact(self):
        # A read brings at most 4 KiB: query parameters around that point
        # must arrive whole (libevhtp alone garbles the byte at the cut).
        ids = []
        for i in range(25):
            status, body = publish(self.p, self.token, "cut", "m%d" % i)
            self.assertEqual(status, 201, body)
            ids.append(body["id"])
        for n in range(3960, 4120, 9):
            path = "/api/rooms/cut/messages?pad=%s&limit=3&before=%s&token=%s" % ("x" * n, ids[20], self.token)
            status, _, body = self.p.request("GET", path)
            self.assertEqual(status, 200, (n, body[:200]))
            self.assertEqual([m["content"] for m in json.loads(body)["messages"]], ["m17", "m18", "m19"], n)

    def test_close_with_another_request_buffered(self):
        # The connection goes away with the second request unread; its
        # request bookkeeping must not touch the connection's freed state.
        for _ in range(3):
            resp = raw(self.p.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                    b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(re.findall(rb"HTTP/1\.1 (\d{3}) ", resp), [b"200"])
        self.assertEqual(self.p.get_json("/healthz")[0], 200)
        self.assertIsNone(self.p.proc.poll())
        self.assertNotIn("event=worker_died", self.p.log())

    def test_empty_lines_before_a_request_are_ignored(self):
        t0 = time.monotonic()
        resp = raw(self.p.port, b"\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                                b"\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(re.findall(rb"HTTP/1\.1 (\d{3}) ", resp), [b"200", b"200"])
        self.assertLess(time.monotonic() - t0, 1 * SLOW)
        # And the request line after them is still held to its limit.
        resp = raw(self.p.port, b"\r\nGET /healthz?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(status_of(resp), 414, resp)

    def test_headers_over_limit_431(self):
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-Filler-%d: %s\r\n" % (i, b"v" * 100) for i in range(60)) + b"\r\n"
        resp = raw(self.p.port, head)
        self.assertEqual(status_of(resp), 431, resp)

    def test_malformed_request_line_400(self):
        for junk in (b"GARBAGE\r\n\r\n", b"GET /healthz HTTP/9.x\r\n\r\n", b"GET\x01 / HTTP/1.1\r\n\r\n"):
            resp = raw(self.p.port, junk)
            self.assertEqual(status_of(resp), 400, (junk, resp))
            self.assertEqual(body_of(resp)["error"]["code"], "bad_request")
        self.assertEqual(self.p.get_json("/healthz")[0], 200)

    def test_slowloris_timed_out_408(self):
        s = socket.create_connection(("127.0.0.1", self.p.port), timeout=10 * SLOW)
        self.addCleanup(s.close)
        t0 = time.monotonic()
        got = b""
        try:
            for ch in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                s.send(bytes([ch]))
                time.sleep(0.05)
                s.setblocking(False)
                try:
                    got += s.recv(4096)
                except BlockingIOError:
                    pass
                s.setblocking(True)
                if got:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.assertEqual(status_of(got), 408, got)
        self.assertLess(time.monotonic() - t0, 3 * SLOW)

    def test_trickled_body_timed_out_408(self):
        """A body sent a byte at a time cannot hold a connection forever
        (the outside audit held 420 such connections open for minutes)."""
        for head, piece in ((b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 500\r\n\r\n", b"{"),
                            (b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n", b"1\r\n \r\n")):
            s = socket.create_connection(("127.0.0.1", self.p.port), timeout=10 * SLOW)
            self.addCleanup(s.close)
            t0 = time.monotonic()
            s.sendall(head)
            got = b""
            try:
                while not got and time.monotonic() - t0 < 8 * SLOW:
                    s.sendall(piece)
                    s.settimeout(0.3)
                    try:
                        got = s.recv(4096)
                    except socket.timeout:
                        pass
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.assertEqual(status_of(got), 408, got)
            # http_header_timeout is 1 s here, counted from the first byte.
            self.assertLess(time.monotonic() - t0, 2.5 * SLOW)

    def test_fields_that_count_once_may_not_repeat(self):
        for field in (b"Authorization: Bearer a", b"Origin: http://x.example", b"Content-Type: application/json",
                      b"Last-Event-ID: 1-0", b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                      b"Sec-WebSocket-Version: 13"):
            resp = raw(self.p.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + field + b"\r\n" + field.lower() +
                       b"\r\nConnection: close\r\n\r\n")
            self.assertEqual(status_of(resp), 400, field)
            self.assertIn(b"more than one", resp)

    def test_connection_close_in_any_case_or_list(self):
        for value in (b"CLOSE", b"Close", b"foo, close", b"close, foo", b"keep-alive, CLOSE"):
            resp = raw(self.p.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: " + value + b"\r\n\r\n"
                       b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(len(re.findall(rb"HTTP/1\.1 200 ", resp)), 1, (value, resp))
            self.assertIn(b"Connection: close", resp, value)

    def test_pipelined_requests_answered_in_order(self):
        reqs = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        resp = raw(self.p.port, reqs)
        statuses = [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", resp)]
        self.assertEqual(statuses, [200, 404, 200])

    def test_deep_pipeline_of_authenticated_publishes(self):
        # Each publish waits for Redis (session lookup, then the store):
        # thousands queued on one connection must all be answered, in order.
        body = json.dumps({"content": "x"})
        req = ("POST /api/rooms/pipe/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s" % (self.token, len(body), body)).encode()
        n = 2000
        s = socket.create_connection(("127.0.0.1", self.p.port), timeout=10 * SLOW)
        self.addCleanup(s.close)
        s.sendall(req * n)
        data = b""
        while data.count(b"HTTP/1.1 ") < n:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
        self.assertEqual(statuses, [b"201"] * n)
        ids = re.findall(rb'"id":"(\d+-\d+)"', data)
        self.assertEqual(len(set(ids)), n)

    def test_libevhtp_writes_nothing_to_stderr(self):
        # libevhtp 1.2.18 printed a coloured "ODDITY, resuming when not
        # paused" line to stderr for each pipelined request left in its
        # buffer; parley's log holds its own key=value lines only.
        doc = json.dumps({"content": "pipelined"}).encode()
        one = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
               b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
               b"POST /api/rooms/lobby/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Authorization: Bearer " + self.token.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(doc) + doc)
        out, _ = exchange(self.p.port, one * 20 + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(len(re.findall(rb"HTTP/1\.1 \d{3} ", out)), 81)
        log = self.p.log()
        self.assertNotIn("ODDITY", log)
        self.assertNotIn("\x1b[", log)
        for line in log.splitlines():
            self.assertRegex(line, r"^ts=\S+ level=\w+ proc=\S+ pid=\d+ event=")

    def test_wrong_content_type_415_and_bad_json_400(self):
        status, _, body = self.p.request("POST", "/api/rooms/lobby/messages", body=b"content=hi",
                                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                                  "Authorization": "Bearer " + self.token})
        self.assertEqual((status, json.loads(body)["error"]["code"]), (415, "unsupported_media_type"))
        status, _, body = self.p.request("POST", "/api/rooms/lobby/messages", body=b"{",
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": "Bearer " + self.token})
        self.assertEqual((status, json.loads(body)["error"]["code"]), (400, "invalid_json"))


# A request hidden where a lenient parser would see the end of a body; the
# answer to it (X-Request-Id echoed) shows that it was smuggled through.
HIDDEN = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: hidden-1\r\n\r\n"


class AnswerWaitsForRedis(OneParley):
    """An answer that waits on Redis is still given when the client has
    stopped sending, or has been quiet past the keep-alive timeout."""

    settings = {"http_keepalive_timeout": "1s", "redis_timeout": "5s"}
    user = "waiter"

    def request(self, content):
        body = json.dumps({"content": content}).encode()
        return ("POST /api/rooms/waits/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n" % (self.token, len(body))).encode() + body

    def test_half_closed_client_gets_its_answer(self):
        s = socket.create_connection(("127.0.0.1", self.p.port), timeout=5 * SLOW)
        try:
            s.sendall(self.request("then shut"))
            s.shutdown(socket.SHUT_WR)      # done sending; still reading
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break                   # the server closes after answering
                out += chunk
        finally:
            s.close()
        self.assertEqual(status_of(out), 201, out)
        self.assertRegex(body_of(out)["id"], r"^\d+-\d+$")

    def test_answer_slower_than_the_keepalive_timeout(self):
        s = socket.create_connection(("127.0.0.1", self.p.port), timeout=6 * SLOW)
        try:
            # Redis answers nothing for 1.6 s: longer than the 1 s keep-alive timeout.
            self.assertEqual(redis_cli(self.env.redis, "CLIENT", "PAUSE", "1600", "ALL"), "OK")
            s.sendall(self.request("slow"))
            out = b""
            while b"\r\n\r\n" not in out or not out.endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            self.assertEqual(status_of(out), 201, out)
            # The connection is still good for the next request.
            s.sendall(self.request("next"))
            out = s.recv(65536)
            self.assertEqual(status_of(out), 201, out)
        finally:
            s.close()


    def test_input_held_while_waiting_is_bounded(self):
        # Not paused while it waits on Redis, the connection is still read
        # only up to about one more request: the rest stays in the kernel.
        worker = self.p.workers()[0]

        def pss_kb():
            with open("/proc/%d/smaps_rollup" % worker) as f:
                return int(re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M).group(1))

        before = pss_kb()
        self.assertEqual(redis_cli(self.env.redis, "CLIENT", "PAUSE", "1500", "ALL"), "OK")
        s = socket.create_connection(("127.0.0.1", self.p.port), timeout=6 * SLOW)
        try:
            s.sendall(self.request("first"))
            s.setblocking(False)
            more, pushed, until = self.request("more") * 200, 0, time.monotonic() + 1.0
            while time.monotonic() < until:
                try:
                    pushed += s.send(more)
                except BlockingIOError:
                    time.sleep(0.01)
            grown = pss_kb() - before
            s.setblocking(True)
            out = b""
            while b"\r\n\r\n" not in out or not out.split(b"\r\n\r\n", 1)[1].startswith(b"{") \
                    or b"}" not in out:
                out += s.recv(65536)
            self.assertEqual(status_of(out), 201, out[:200])
        finally:
            s.close()
        self.assertGreater(pushed, 1 << 20)         # the client got megabytes out
        if "ASAN_OPTIONS" not in os.environ:       # AddressSanitizer's heap holds freed memory back
            self.assertLess(grown, 1024, "the worker grew %d kB" % grown)


class NoNagle(OneParley):
    """Answers leave at once: two pipelined requests get their answers
    within a moment of each other.  With Nagle's algorithm on the socket,
    the second answer waited for the client's delayed ACK of the first
    (~40 ms on Linux)."""

    user = "piper"

    def test_pipelined_answers_are_not_held_back(self):
        def post(content):
            body = json.dumps({"content": content}).encode()
            return ("POST /api/rooms/pipe/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n" % (self.token, len(body))).encode() + body

        s = socket.create_connection(("127.0.0.1", self.p.port), timeout=5 * SLOW)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        gaps = []
        try:
            for i in range(8):
                s.sendall(post("a%d" % i) + post("b%d" % i))
                buf, first = b"", None
                while buf.count(b" 201 ") < 2 or not buf.endswith(b"}"):
                    buf += s.recv(65536)
                    if first is None and buf.count(b" 201 ") >= 1 and b"}" in buf:
                        first = time.monotonic()
                gaps.append(time.monotonic() - first)
        finally:
            s.close()
        gaps.sort()
        self.assertLess(gaps[len(gaps) // 2], 0.025, gaps)


class Smuggling(OneParley):
    """The framing shapes of the request-smuggling audit: each is refused
    with one answer, nothing hidden behind it is answered, and the
    connection closes."""

    settings = {"max_body": "2k"}
    user = "smug"

    def post(self, fields, body=b"", version=b"HTTP/1.1"):
        return (b"POST /api/rooms/lobby/messages " + version + b"\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nAuthorization: Bearer " + self.token.encode() + b"\r\n"
                + fields + b"\r\n" + body)

    def assert_refused(self, data, status, code=None):
        t0 = time.monotonic()
        out, closed = exchange(self.p.port, data)
        got = responses(out)
        self.assertEqual([r[0] for r in got], [status], (data, out))
        self.assertNotIn(b"hidden-1", out)
        self.assertTrue(closed, "the connection stays open after %d" % status)
        self.assertLess(time.monotonic() - t0, 2.5 * SLOW)
        self.assertEqual(json.loads(got[0][2])["error"]["code"], code or {
            400: "bad_request", 413: "too_large", 501: "not_implemented",
            505: "http_version_not_supported"}[status])
        return got[0]

    def test_overflowing_chunk_size_is_400(self):
        # 17 hex digits were read as 15: the body was taken and the request
        # after it answered; 19 digits hung.
        body = b'{"content":"x"}'
        for size in (b"1000000000000000f", b"100000000000000000f", b"fffffffffffffffff"):
            self.assert_refused(self.post(b"Transfer-Encoding: chunked\r\n",
                                          size + b"\r\n" + body + b"\r\n0\r\n\r\n" + HIDDEN), 400)
        # Sixteen digits are read, and are past max_body: 413.
        self.assert_refused(self.post(b"Transfer-Encoding: chunked\r\n", b"ffffffffffffffff\r\n" + HIDDEN), 413)

    def test_transfer_coding_not_final_chunked_is_refused(self):
        # These were taken for no body: the body became the next request.
        for te, status in ((b"xchunked", 400), (b"chunked, identity", 400), (b"identity", 400),
                           (b"chunked, chunked", 400), (b"chunked,", 400), (b"gzip, chunked", 501)):
            self.assert_refused(self.post(b"Transfer-Encoding: " + te + b"\r\n", HIDDEN), status)
        self.assert_refused(self.post(b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", HIDDEN), 501)
        self.assert_refused(self.post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n" + HIDDEN,
                                      version=b"HTTP/1.0"), 400)

    def test_whitespace_before_the_colon_is_400(self):
        body = b'{"content":"x"}'
        self.assert_refused(self.post(b"Transfer-Encoding : chunked\r\n",
                                      b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) + HIDDEN), 400)
        self.assert_refused(self.post(b"Content-Length : %d\r\n" % len(body), body + HIDDEN), 400)

    def test_control_bytes_in_a_field_are_400(self):
        for value in (b"a\x00b", b"a\x01b", b"a\x7fb", b"a\rb"):
            self.assert_refused(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + value + b"\r\n\r\n" + HIDDEN, 400)
        self.assert_refused(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n" + HIDDEN, 400)

    def test_http_versions(self):
        for version in (b"HTTP/2.0", b"HTTP/9.9", b"HTTP/0.9"):
            self.assert_refused(b"GET /healthz " + version + b"\r\nHost: x\r\n\r\n" + HIDDEN, 505)
        for version in (b"HTTP/1.10", b"HTTP/1", b"http/1.1", b"HTTP/1.1 "):
            self.assert_refused(b"GET /healthz " + version + b"\r\nHost: x\r\n\r\n" + HIDDEN, 400)
        out, _ = exchange(self.p.port, b"GET /healthz HTTP/1.0\r\n\r\n")
        self.assertEqual([r[0] for r in responses(out)], [200])

    def test_host_is_required_once(self):
        self.assert_refused(b"GET /healthz HTTP/1.1\r\n\r\n" + HIDDEN, 400)
        self.assert_refused(b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + HIDDEN, 400)
        self.assert_refused(b"GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n" + HIDDEN, 400)
        got = self.assert_refused(b"GET /healthz HTTP/1.1\r\nX: y\r\n\r\n", 400)
        self.assertIn("Host", json.loads(got[2])["error"]["message"])

    def test_bare_lf_is_400(self):
        self.assert_refused(b"GET /healthz HTTP/1.1\nHost: x\n\n" + HIDDEN, 400)
        self.assert_refused(self.post(b"Transfer-Encoding: chunked\r\n", b"5\nhello\r\n0\r\n\r\n" + HIDDEN), 400)

    def test_chunked_body_in_pieces_then_the_next_request(self):
        # Extensions and trailers are taken and dropped; the body is the
        # data; the pipelined request after it is answered, after it.
        content = "chunked in pieces %d" % time.monotonic_ns()
        doc = json.dumps({"content": content}).encode()
        body = (b"%x;ext=1;q=\"a b\"\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: t\r\n\r\n"
                % (10, doc[:10], len(doc) - 10, doc[10:]))
        data = self.post(b"Transfer-Encoding: chunked\r\n", body) + HIDDEN.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        s = socket.create_connection(("127.0.0.1", self.p.port), timeout=5 * SLOW)
        self.addCleanup(s.close)
        for i in range(0, len(data), 7):
            s.sendall(data[i:i + 7])
            time.sleep(0.002)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        got = responses(out)
        self.assertEqual([r[0] for r in got], [201, 200], out)
        self.assertEqual(got[1][1]["x-request-id"], "hidden-1")
        status, _, history = self.p.get_json("/api/rooms/lobby/messages?limit=1&token=" + self.token)
        self.assertEqual(history["messages"][-1]["content"], content)

    def test_expect_100_continue(self):
        # The gate collects the body before libevhtp sees the head, so it
        # says "go ahead" itself, once, before the body is sent.
        doc = b'{"content":"after 100"}'
        s = socket.create_connection(("127.0.0.1", self.p.port), timeout=5 * SLOW)
        self.addCleanup(s.close)
        s.sendall(self.post(b"Expect: 100-continue\r\nContent-Length: %d\r\n" % len(doc)))
        interim = s.recv(65536)
        self.assertEqual(interim, b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(doc)
        out = s.recv(65536)
        self.assertEqual([r[0] for r in responses(out)], [201], out)


def metric(p, name):
    """The value of metric NAME (with its labels) on parleyd P."""
    _, _, body = p.request("GET", "/metrics")
    m = re.search(r"^%s (\d+)$" % re.escape(name), body.decode(), re.M)
    return int(m.group(1)) if m else 0


class Head(OneParley):
    """HEAD is GET without the body, wherever GET is served (RFC 9110 9.3.2)."""

    settings = {}
    user = "header"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        publish(cls.p, cls.token, "heads", "one")

    def head(self, path):
        """A HEAD request: (status, headers, bytes after the head, closed)."""
        out, closed = exchange(self.p.port, b"HEAD %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                               % path.encode(), timeout=3)
        head, _, rest = out.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return int(lines[0].split()[1]), headers, rest, closed

    def test_json_and_text_routes(self):
        for path in ("/healthz", "/metrics", "/api/rooms/heads/messages?token=" + self.token):
            get_status, get_headers, get_body = self.p.request("GET", path)
            status, headers, rest, closed = self.head(path)
            self.assertEqual((status, rest, closed), (get_status, b"", True), path)
            self.assertEqual(headers["content-type"], get_headers["content-type"])
            if not path.startswith("/metrics"):     # the counters move between the two
                self.assertEqual(int(headers["content-length"]), len(get_body), path)
        status, headers, rest, _ = self.head("/api/rooms/heads/messages")
        self.assertEqual((status, headers["www-authenticate"], rest), (401, "Bearer", b""))

    def test_websocket_route_stays_get_only(self):
        status, headers, rest, _ = self.head("/ws/chat/heads")
        self.assertEqual((status, headers["allow"], rest), (405, "GET", b""))

    def test_event_streams_answer_headers_and_end(self):
        for path in ("/api/rooms/heads/events?token=" + self.token,
                     "/api/chat/stream?query=help&token=" + self.token):
            asked = metric(self.p, "parley_agent_requests_total")
            t0 = time.monotonic()
            status, headers, rest, closed = self.head(path)
            self.assertEqual((status, rest, closed), (200, b"", True), path)
            self.assertLess(time.monotonic() - t0, 2 * SLOW)
            self.assertEqual(headers["content-type"], "text/event-stream")
            self.assertNotIn("content-length", headers)
            self.assertEqual(metric(self.p, "parley_agent_requests_total"), asked, "HEAD asked the agent")
        self.assertEqual(metric(self.p, 'parley_connections{transport="sse"}'), 0)
        # The GET of the same stream does ask the agent (the metric counts).
        status, _, body = self.p.request("GET", "/api/chat/stream?query=help&token=" + self.token)
        self.assertIn(b"event: ai_done", body)
        self.assertEqual(metric(self.p, "parley_agent_requests_total"), asked + 1)
        status, headers, rest, _ = self.head("/api/rooms/heads/events")
        self.assertEqual((status, rest), (401, b""))


class Cors(OneParley):
    settings = {"allowed_origins": "https://chat.example, https://b.example"}
    user = "cors"

    def test_preflight(self):
        status, headers, body = self.p.request("OPTIONS", "/api/rooms/lobby/messages", headers={
            "Origin": "https://b.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        self.assertEqual(status, 204)
        self.assertEqual(headers["access-control-allow-origin"], "https://b.example")
        self.assertEqual(headers["access-control-allow-credentials"], "true")
        self.assertIn("POST", headers["access-control-allow-methods"])
        for h in ("Authorization", "Content-Type", "Last-Event-ID"):
            self.assertIn(h, headers["access-control-allow-headers"])
        self.assertEqual(headers["access-control-max-age"], "600")
        self.assertIn("Origin", headers["vary"])

    def test_allowed_origin_echoed_only_when_allowed(self):
        status, headers, _ = self.p.request("GET", "/api/rooms/lobby/messages?token=" + self.token,
                                            headers={"Origin": "https://chat.example"})
        self.assertEqual(status, 200)
        self.assertEqual(headers["access-control-allow-origin"], "https://chat.example")
        self.assertIn("X-Request-Id", headers["access-control-expose-headers"])
        status, headers, body = self.p.request("GET", "/api/rooms/lobby/messages?token=" + self.token,
                                               headers={"Origin": "https://evil.example"})
        self.assertEqual(status, 403)
        self.assertEqual(json.loads(body)["error"]["code"], "forbidden")
        self.assertNotIn("access-control-allow-origin", headers)
        status, headers, _ = self.p.request("OPTIONS", "/healthz", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        self.assertEqual(status, 403)
        # Not a browser: no Origin, no CORS headers, no refusal.
        status, headers, _ = self.p.request("GET", "/healthz")
        self.assertEqual(status, 200)
        self.assertNotIn("access-control-allow-origin", headers)


if __name__ == "__main__":
    unittest.main()
