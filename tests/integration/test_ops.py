"""GET /healthz, GET /metrics and the error format, on a real parleyd."""

import http.client
import json
import os
import re
import time
import unittest

from harness import Env, SSEClient, publish, session

# One sample line of the Prometheus text format (version 0.0.4).
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)?\})? (-?[0-9.eE+]+|NaN|[+-]Inf)$')


def parse_prometheus(text):
    """Returns {(name, labels): value}; fails on any malformed line."""
    samples = {}
    typed = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert name not in typed, "TYPE twice for " + name
            typed.add(name)
            continue
        m = SAMPLE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        key = (m.group(1), m.group(3) or "")
        assert key not in samples, "duplicate series %r" % (key,)
        assert m.group(1) in typed, "sample before its TYPE: " + line
        samples[key] = float(m.group(5))
    return samples


class Ops(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.p = cls.env.parleyd()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_healthz(self):
        status, headers, body = self.p.get_json("/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["workers"], 2)
        self.assertIn(body["pid"], self.p.workers())

    def test_head_healthz(self):
        status, headers, body = self.p.request("HEAD", "/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")

    def test_metrics_parse_and_count_requests(self):
        def total():
            status, headers, body = self.p.request("GET", "/metrics")
            self.assertEqual(status, 200)
            self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
            return parse_prometheus(body.decode())

        before = total()
        for _ in range(10):
            self.p.request("GET", "/healthz")
        self.p.request("GET", "/no/such/path")
        after = total()
        # 10 health checks, one 404 and the second /metrics itself.
        self.assertEqual(after[("parley_http_requests_total", "")]
                         - before[("parley_http_requests_total", "")], 12)
        self.assertEqual(after[("parley_http_responses_total", 'class="4xx"')]
                         - before[("parley_http_responses_total", 'class="4xx"')], 1)
        self.assertEqual(after[("parley_workers", 'state="serving"')], 2)
        per_worker = [v for (name, _), v in after.items() if name == "parley_worker_http_requests_total"]
        self.assertEqual(len(per_worker), 2)
        self.assertEqual(sum(per_worker), after[("parley_http_requests_total", "")])

    def assert_error(self, status, headers, body, want_status, code):
        self.assertEqual(status, want_status)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertRegex(headers["x-request-id"], r"^[0-9a-f]{16}$")
        doc = json.loads(body)
        self.assertEqual(set(doc), {"error"})
        self.assertEqual(doc["error"]["code"], code)
        self.assertIsInstance(doc["error"]["message"], str)
        self.assertTrue(doc["error"]["message"])
        return headers["x-request-id"]

    def test_unknown_path_404(self):
        rid = self.assert_error(*self.p.request("GET", "/nope"), 404, "not_found")
        # The same id appears in the log line of that request.
        self.p.wait_log(r"event=request id=%s client=127\.0\.0\.1 method=GET path=/nope status=404" % rid)

    def test_wrong_method_405(self):
        status, headers, body = self.p.request("POST", "/healthz", body=b"{}")
        self.assert_error(status, headers, body, 405, "method_not_allowed")
        self.assertEqual(headers["allow"], "GET, HEAD")
        status, headers, body = self.p.request("DELETE", "/metrics")
        self.assert_error(status, headers, body, 405, "method_not_allowed")
        self.assertEqual(headers["allow"], "GET, HEAD")   # HEAD wherever GET

    def test_percent_escape_in_literal_path_is_404(self):
        self.assert_error(*self.p.request("GET", "/healthz%zz"), 404, "not_found")

    def test_request_ids_unique_and_proxy_id_kept(self):
        ids = {self.p.request("GET", "/healthz")[1]["x-request-id"] for _ in range(20)}
        self.assertEqual(len(ids), 20)
        _, headers, _ = self.p.request("GET", "/healthz", headers={"X-Request-Id": "haproxy-42"})
        self.assertEqual(headers["x-request-id"], "haproxy-42")
        _, headers, _ = self.p.request("GET", "/healthz", headers={"X-Request-Id": "bad id\x01"})
        self.assertNotEqual(headers["x-request-id"], "bad id\x01")

    def test_keepalive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.p.port, timeout=5)
        self.addCleanup(conn.close)
        pids = set()
        for _ in range(5):
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            pids.add(json.loads(resp.read())["pid"])
            self.assertEqual(resp.status, 200)
        self.assertEqual(len(pids), 1)       # one connection, one worker


if __name__ == "__main__":
    unittest.main()


class StaticFiles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import os
        cls.env = Env()
        root = os.path.join(cls.env.tmpdir, "web")
        os.makedirs(os.path.join(root, "js"))
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("<!doctype html><title>parley</title>")
        with open(os.path.join(root, "js", "app.js"), "w") as f:
            f.write("export const x = 1;\n")
        with open(os.path.join(root, ".secret"), "w") as f:
            f.write("hidden")
        with open(os.path.join(cls.env.tmpdir, "outside.txt"), "w") as f:
            f.write("outside")
        os.symlink(os.path.join(cls.env.tmpdir, "outside.txt"), os.path.join(root, "link.txt"))
        outside = os.path.join(cls.env.tmpdir, "outside")
        os.makedirs(os.path.join(outside, "sub"))
        for name in ("passwd", "index.html", "sub/index.html"):
            with open(os.path.join(outside, name), "w") as f:
                f.write("outside")
        os.symlink(outside, os.path.join(root, "dirlink"))
        os.symlink(outside, os.path.join(root, "js", "deeplink"))
        # The configured web_root itself may be a symbolic link: the operator's choice.
        os.symlink(root, os.path.join(cls.env.tmpdir, "current"))
        cls.p = cls.env.parleyd({"web_root": os.path.join(cls.env.tmpdir, "current"), "workers": "1"})

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_index_and_types(self):
        status, headers, body = self.p.request("GET", "/")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/html; charset=utf-8")
        self.assertEqual(body, b"<!doctype html><title>parley</title>")
        self.assertEqual(headers["cache-control"], "no-cache")
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        status, headers, body = self.p.request("GET", "/js/app.js")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/javascript; charset=utf-8")
        self.assertEqual(body, b"export const x = 1;\n")

    def test_revalidation_304(self):
        _, headers, _ = self.p.request("GET", "/index.html")
        status, headers2, body = self.p.request("GET", "/index.html",
                                                headers={"If-None-Match": headers["etag"]})
        self.assertEqual(status, 304)
        self.assertEqual(body, b"")

    def test_traversal_and_hidden_refused(self):
        for path in ("/../outside.txt", "/%2e%2e/outside.txt", "/js/%2e%2e/%2e%2e/outside.txt",
                     "/.secret", "/%2esecret", "/link.txt", "/js//app.js", "/js%2fapp.js%00",
                     "/js\\app.js", "/js", "/dirlink/passwd", "/dirlink/", "/dirlink/sub/",
                     "/js/deeplink/passwd", "/%64irlink/passwd", "/js%2fapp.js", "/js%2Fapp.js"):
            status, headers, body = self.p.request("GET", path)
            self.assertEqual(status, 404, path)
            self.assertEqual(json.loads(body)["error"]["code"], "not_found")
            self.assertNotIn(b"outside", body)
            self.assertNotIn(b"hidden", body)

    def test_methods(self):
        status, headers, _ = self.p.request("POST", "/index.html", body=b"x")
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], "GET, HEAD")
        status, _, _ = self.p.request("POST", "/missing.html", body=b"x")
        self.assertEqual(status, 404)
        # HEAD: the GET's headers, with the Content-Length its body has.
        _, _, body = self.p.request("GET", "/")
        status, headers, head_body = self.p.request("HEAD", "/")
        self.assertEqual((status, int(headers["content-length"]), head_body), (200, len(body), b""))


class MemoryAfterTraffic(unittest.TestCase):
    """A worker gives the memory a busy spell grew its heap to back to the
    system once traffic has calmed down (glibc keeps it otherwise)."""

    def setUp(self):
        self.env = Env()
        self.addCleanup(self.env.close)

    def pss_kb(self, p):
        total = 0
        for pid in p.workers():
            with open("/proc/%d/smaps_rollup" % pid) as f:
                total += int(re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M).group(1))
        return total

    def test_heap_trimmed_once_quiet(self):
        p = self.env.parleyd({"workers": "1"})
        token = session(p, "burst")
        streams = [SSEClient(p.port, "/api/rooms/burst/events?token=" + token) for _ in range(30)]
        for s in streams:
            self.addCleanup(s.close)
            self.assertEqual(s.wait_ready(), 200)
        time.sleep(0.3)
        for i in range(200):
            self.assertEqual(publish(p, token, "burst", "%d %s" % (i, "x" * 3000))[0], 201)
        for s in streams:
            s.wait_events(200, kind="message")
        busy = self.pss_kb(p)
        # Checked every 10 s: one look sees the burst, a quiet one trims.
        p.wait_log(r"event=memory_trimmed ", timeout=25)
        if "ASAN_OPTIONS" not in os.environ:     # AddressSanitizer's heap is its own: trimming cannot reach it
            self.assertLess(self.pss_kb(p), busy)
