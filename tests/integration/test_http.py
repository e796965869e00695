"""HTTP hygiene on the real parleyd: body and header limits, malformed
requests, slow clients, pipelining."""

import json
import re
import socket
import time
import unittest

from harness import Env, SLOW, publish, session


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


def status_of(response):
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else None


def body_of(response):
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


class Hygiene(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.p = cls.env.parleyd({"workers": "1", "max_body": "2k", "max_header_size": "4k",
                                 "http_header_timeout": "1s"})
        cls.token = session(cls.p, "hy")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

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

    def test_wrong_content_type_415_and_bad_json_400(self):
        status, _, body = self.p.request("POST", "/api/rooms/lobby/messages", body=b"content=hi",
                                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                                  "Authorization": "Bearer " + self.token})
        self.assertEqual((status, json.loads(body)["error"]["code"]), (415, "unsupported_media_type"))
        status, _, body = self.p.request("POST", "/api/rooms/lobby/messages", body=b"{",
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": "Bearer " + self.token})
        self.assertEqual((status, json.loads(body)["error"]["code"]), (400, "invalid_json"))


class Cors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.p = cls.env.parleyd({"workers": "1", "allowed_origins": "https://chat.example, https://b.example"})
        cls.token = session(cls.p, "cors")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

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
