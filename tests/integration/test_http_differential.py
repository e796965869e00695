"""test_http_differential.py - parley's request framing against h11's.

The head gate (src/http.c: http_head_scan, then the Content-Length bytes or
http_chunked_decode) decides for every request whether to refuse it, and
else what its body is and where the next request starts.  A disagreement
with the proxy in front is how requests get smuggled, so the decision is
checked against h11, an independent strict HTTP/1.1 parser, on thousands
of generated and mutated request heads and chunked bodies (seeded: the
same cases every run), each followed by a pipelined request:

  - h11 refuses -> parley refuses (or waits for more bytes: never serves);
  - both accept -> the same body bytes, the same start of the next request;
  - parley refuses what h11 accepts only for the deliberate extra
    strictness in STRICTER, and answers the status named there.

parley's side is tests/http_verdict (the pure modules, linked from
src/libparley.a); h11's is h11_verdict.py, run by an interpreter that can
import h11.  A smaller sample goes to a live parleyd, followed by a
pipelined GET: a refused case gets exactly its status and the connection
closes, an accepted one gets an answer and then the pipelined request's,
so the server really uses the decision."""

import os
import random
import re
import shutil
import subprocess
import sys
import unittest

from harness import Env, SLOW
from test_http import exchange, responses

SEED = 20261205
CASES = 6000
LIVE_CASES = 160
MAX_HEADERS = 4096
MAX_BODY = 2048
MAX_REQUEST_LINE = 8000
CHUNK_LINE_MAX = 1024
SECOND = b"GET /healthz HTTP/1.1\r\nHost: s\r\nX-Request-Id: second-%d\r\nConnection: close\r\n\r\n"

TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
# RFC 9112 7.1, written out independently of src/http_chunked.c (without a
# blank between the size and the first ";", which h11 refuses too).
EXTENSION = rb"[ \t]*%s(?:[ \t]*=[ \t]*(?:%s|%s))?" % (TOKEN, TOKEN, QUOTED)
CHUNK_LINE = re.compile(rb"[0-9A-Fa-f]{1,16}(?:;%s(?:[ \t]*;%s)*)?" % (EXTENSION, EXTENSION))
HOST_CHARS = re.compile(rb"[A-Za-z0-9\-._~%!$&'()*+,;=:\[\]]*")


class Request:
    """What the checks below need to know about a request that h11 took:
    its head's lines, its chunk lines and trailer lines (as h11 split
    them), its HTTP version and its body."""

    def __init__(self, data, version, body):
        self.version = version
        self.body = body
        head_end = re.search(rb"\n\r?\n", data).end()
        self.head = re.findall(rb"[^\n]*\n", data[:head_end])
        self.fields = [self.field(line) for line in self.head[1:-1]]
        self.chunk_lines, self.trailer, self.trailer_end = [], [], []
        if self.named(b"transfer-encoding"):
            self.walk_chunks(data, head_end)

    @staticmethod
    def field(line):
        name, _, value = line.partition(b":")
        return name.lower(), value.rstrip(b"\r\n").strip(b" \t")

    def named(self, name):
        return [value for n, value in self.fields if n == name]

    def walk_chunks(self, data, pos):
        # The way h11 reads them (_readers.ChunkedReader): lines end at CRLF.
        while True:
            end = data.index(b"\r\n", pos)
            line = data[pos:end]
            self.chunk_lines.append(line)
            size = int(re.match(rb"[0-9A-Fa-f]+", line).group(0), 16)
            pos = end + 2
            if size == 0:
                break
            pos += size + 2
        # And the trailer section the way h11 does (_receivebuffer.maybe_extract_lines).
        if data[pos:pos + 1] == b"\n" or data[pos:pos + 2] == b"\r\n":
            self.trailer_end = [data[pos:pos + 1 if data[pos:pos + 1] == b"\n" else pos + 2]]
            return
        lines = re.findall(rb"[^\n]*\n", data[pos:re.search(rb"\n\r?\n", data[pos:]).end() + pos])
        self.trailer, self.trailer_end = lines[:-1], lines[-1:]

    def field_lines(self):
        return self.head[1:-1] + self.trailer


def content(line):
    return line[:-2] if line.endswith(b"\r\n") else line[:-1]


# parley's deliberate extra strictness: (what, status, applies(request)).
STRICTER = [
    ("an HTTP version other than 1.0 and 1.1 (505, RFC 9110 15.6.6)", 505,
     lambda r: r.version not in ("1.0", "1.1")),
    ("a bare LF as a line end (RFC 9112 2.2 makes taking it optional; libevhtp refuses it)", 400,
     lambda r: any(not line.endswith(b"\r\n") for line in r.head + r.trailer + r.trailer_end)),
    ("obs-fold (RFC 9112 5.2 lets a server refuse it)", 400,
     lambda r: any(line[:1] in (b" ", b"\t") for line in r.field_lines())),
    ("a control character other than HTAB in a field value (RFC 9110 5.5; h11 takes most)", 400,
     lambda r: any(re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", content(line)) for line in r.field_lines())),
    ("a method of other than A-Z and _ (all libevhtp can parse)", 400,
     lambda r: not re.match(rb"[A-Z_]+ ", r.head[0])),
    ("a request target that is neither origin-form nor absolute-form (no OPTIONS *, no CONNECT)", 400,
     lambda r: not re.match(rb"[A-Z_]+ (/|[A-Za-z]+://)", r.head[0])),
    ("a Host value that is not host[:port] (RFC 9112 3.2)", 400,
     lambda r: any(not HOST_CHARS.fullmatch(v) for v in r.named(b"host"))),
    ("a Content-Length list such as '5, 5' (RFC 9110 8.6 lets a recipient refuse it)", 400,
     lambda r: any(b"," in v for v in r.named(b"content-length"))),
    ("Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1)", 400,
     lambda r: r.version == "1.0" and r.named(b"transfer-encoding")),
    ("Content-Length together with Transfer-Encoding (RFC 9112 6.3; h11 lets chunked win)", 400,
     lambda r: r.named(b"transfer-encoding") and r.named(b"content-length")),
    ("a chunk line outside the RFC 9112 7.1 grammar (h11 takes any bytes after ';', blanks before "
     "the CRLF, 17 to 20 digits) or over 1,024 bytes", 400,
     lambda r: any(not CHUNK_LINE.fullmatch(line) or len(line) + 1 > CHUNK_LINE_MAX for line in r.chunk_lines)),
    ("Content-Length or Transfer-Encoding among the trailer fields", 400,
     lambda r: any(Request.field(line)[0] in (b"content-length", b"transfer-encoding") for line in r.trailer)),
    ("a body over max_body", 413, lambda r: len(r.body) > MAX_BODY),
    ("a request line over 8,000 bytes", 414, lambda r: len(r.head[0]) > MAX_REQUEST_LINE),
    ("header or trailer fields over max_header_size", 431,
     lambda r: sum(map(len, r.head[1:])) > MAX_HEADERS or sum(map(len, r.trailer + r.trailer_end)) > MAX_HEADERS),
]


# --- the cases ----------------------------------------------------------

def pick(rng, good, bad, p_bad=0.1):
    return rng.choice(bad) if bad and rng.random() < p_bad else rng.choice(good)


METHODS = ([b"GET", b"POST", b"HEAD"], [b"get", b"M-SEARCH", b"G_T", b"PUT", b"OPTIONS", b"CONNECT", b"", b"GE T"])
TARGETS = ([b"/healthz", b"/nope", b"/api/rooms/a/messages"],
           [b"/a?b=c&d=%20", b"http://h/p?q", b"*", b"h:80", b"/\x80", b"/a\"b", b"", b"/a b", b"//x", b"HTTP://h/"])
VERSIONS = ([b"HTTP/1.1"] * 6 + [b"HTTP/1.0"],
            [b"HTTP/2.0", b"HTTP/9.9", b"HTTP/0.9", b"HTTP/1.10", b"http/1.1", b"HTTP/1", b"HTTP/1.1 ", b"HTTP/1.2"])
NAMES = ([b"Accept", b"X-A", b"User-Agent", b"x_y", b"Content-Type"],
         [b"X A", b"", b"X(A)", b"\x80", b"X-A "])
VALUES = ([b"text/plain", b"a b", b"", b"\x80\xff", b"v\tw", b"1", b"a, b"],
          [b"a\x00b", b"a\x01b", b"a\x7f", b"a\x0bb", b"a\rb", b"a\x1bb"])
SEPARATORS = ([b": ", b":", b":\t", b":  ", b": \t "], [b" : ", b"\t:", b" :"])
LINE_ENDS = ([b"\r\n"], [b"\n", b"\r\r\n", b"\r"])
HOSTS = ([b"x", b"chat.example:8080", b"[::1]:80", b"", b"a.b"], [b"a b", b"a/b", b"a@b", b"\x80"])
LENGTHS = [b"%d", b"0%d", b" %d ", b"%d, %d", b"%d,%d", b"+%d", b"-1", b"0x%x", b"", b"%d.0", b"%d %d"]
CODINGS = ([b"chunked"] * 6 + [b"Chunked", b"CHUNKED", b" chunked \t"],
           [b"xchunked", b"chunked, identity", b"identity", b"gzip, chunked", b"gzip;q=1, chunked",
            b'x;a="b,c", chunked', b"chunked, chunked", b"chunked,", b", chunked", b"", b"chunked;a=1",
            b"gzip", b"gzip,,chunked", b'"chunked"'])
EXTENSIONS = ([b""] * 8 + [b";a", b";a=b", b'; a = "x y" ;c', b";a=\"\\\"\""],
              [b" ", b";", b";a=", b"; a b", b";a=b ", b";a=\"x", b";=b", b";a\x01", b"\t", b";a=(b)", b" ;a"])
TRAILERS = ([b"X-T: 1", b"X-U:\t2 "], [b"X-T : 1", b" X-T: 1", b"X-T: \x01", b"X-T 1",
                                       b"Content-Length: 5", b"transfer-encoding: chunked"])
BODY_BYTES = [b"a", b"{", b"\r\n", b"0\r\n\r\n", b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"\x00", b"\n", b"5\r\n"]


class Gen:
    """Seeded requests: a valid one, with each part from time to time
    replaced by a variant that h11 or parley may judge otherwise."""

    def __init__(self, seed):
        self.rng = random.Random(seed)

    def pick(self, choices, p_bad=0.1):
        return pick(self.rng, choices[0], choices[1], p_bad)

    def end(self):
        return self.pick(LINE_ENDS, 0.015)

    def field(self, name, value):
        return name + self.pick(SEPARATORS, 0.05) + value + self.end()

    def body_bytes(self, n):
        out = b""
        while len(out) < n:
            out += self.rng.choice(BODY_BYTES)
        return out[:n]

    def size(self):
        r = self.rng.random()
        return self.rng.randrange(0, 40) if r < 0.9 else self.rng.randrange(MAX_BODY - 8, MAX_BODY + 8)

    def chunked(self):
        out = b""
        for _ in range(self.rng.randrange(0, 4)):
            n = self.rng.randrange(1, 40) if self.rng.random() < 0.95 else self.rng.randrange(MAX_BODY - 8, MAX_BODY + 8)
            digits = b"%x" % n if self.rng.random() < 0.7 else b"%X" % n
            if self.rng.random() < 0.15:
                digits = b"0" * self.rng.randrange(1, 20) + digits
            data = self.body_bytes(n + (self.rng.choice([-1, 1]) if self.rng.random() < 0.05 else 0))
            out += digits + self.pick(EXTENSIONS, 0.1) + self.end() + data + self.pick(
                ([b"\r\n"], [b"\n", b"", b"X\r\n", b"\r"]), 0.04)
        out += self.rng.choice([b"0", b"0", b"000", b"0;x=y"]) + self.end()
        for _ in range(self.rng.choice([0, 0, 0, 1, 2])):
            out += self.pick(TRAILERS, 0.3) + self.end()
        return out + self.pick(([b"\r\n"], [b"\n", b""]), 0.04)

    def framing(self):
        """The framing fields and the body."""
        kind = self.rng.choice(["none", "length", "length", "chunked", "chunked", "chunked"])
        if kind == "none":
            return [], b""
        if kind == "length":
            n = self.size()
            form = self.rng.choice(LENGTHS) if self.rng.random() < 0.15 else b"%d"
            value = form % ((n,) * form.count(b"%"))
            fields = [self.field(b"Content-Length", value)]
            if self.rng.random() < 0.05:
                fields.append(self.field(b"content-length", self.rng.choice([value, b"%d" % (n + 1), b"0%d" % n])))
            body = self.body_bytes(n)
            if self.rng.random() < 0.05:
                body = body[:-1] if self.rng.random() < 0.5 else body + b"x"
            return fields, body
        fields = [self.field(b"Transfer-Encoding", self.pick(CODINGS, 0.25))]
        if self.rng.random() < 0.04:
            fields.append(self.field(b"Transfer-Encoding", self.pick(CODINGS, 0.5)))
        if self.rng.random() < 0.04:
            fields.append(self.field(b"Content-Length", b"%d" % self.rng.randrange(0, 40)))
        return fields, self.chunked()

    def request(self):
        """A first request: (bytes, whether a live parleyd answers it
        through its routes, so that the pipelined request after it can be
        checked), and its method."""
        method, target, version = self.pick(METHODS, 0.05), self.pick(TARGETS, 0.06), self.pick(VERSIONS, 0.05)
        line = method + b" " + target + b" " + version + self.end()
        fields = [self.field(self.pick(NAMES, 0.05), self.pick(VALUES, 0.05)) for _ in range(self.rng.randrange(0, 3))]
        hosts = self.rng.choice([1] * 12 + [0, 2])
        fields += [self.field(self.rng.choice([b"Host", b"host"]), self.pick(HOSTS, 0.08)) for _ in range(hosts)]
        framing, body = self.framing()
        fields += framing
        self.rng.shuffle(fields)
        if self.rng.random() < 0.03:
            fields.insert(self.rng.randrange(0, len(fields) + 1), self.rng.choice([b" folded\r\n", b"\tx\r\n"]))
        data = line + b"".join(fields) + self.end() + body
        live = (method in METHODS[0] and target in TARGETS[0] and version in VERSIONS[0])
        return self.mutate(data), live, method

    def mutate(self, data):
        if self.rng.random() > 0.2:
            return data
        for _ in range(self.rng.randrange(1, 4)):
            at = self.rng.randrange(0, len(data) + 1)
            byte = self.rng.choice([b"\r", b"\n", b" ", b"\t", b":", b";", b",", b"0", b"\x00", b"\x7f", b"\x80",
                                    b"a", b'"', b"\r\n"])
            op = self.rng.randrange(4)
            data = (data[:at] + byte + data[at:] if op == 0 else data[:at] + byte + data[at + 1:] if op == 1
                    else data[:at] + data[at + 1:] if op == 2 else data[:at])
        return data


def audit_cases():
    """The shapes of the audit (issue 10), always among the cases."""
    post = b"POST /api/rooms/a/messages HTTP/1.1\r\nHost: x\r\n"
    hidden = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: hidden\r\n\r\n"
    body = b'{"content":"x"}'
    return [
        post + b"Transfer-Encoding: chunked\r\n\r\n1000000000000000f\r\n" + body + b"\r\n0\r\n\r\n" + hidden,
        post + b"Transfer-Encoding: chunked\r\n\r\n100000000000000000f\r\n" + body + b"\r\n0\r\n\r\n",
        post + b"Transfer-Encoding: xchunked\r\n\r\n" + hidden,
        post + b"Transfer-Encoding: chunked, identity\r\n\r\n" + hidden,
        post + b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        post + b"Transfer-Encoding : chunked\r\n\r\nf\r\n" + body + b"\r\n0\r\n\r\n",
        post + b"Content-Length : 15\r\n\r\n" + body,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
        b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ]


def feed(cases):
    return b"".join(b"%d\n%s" % (len(c), c) for c in cases)


def h11_interpreter():
    """An interpreter that can import h11: this one, python3 on PATH, or
    Debian's own (a pyenv python3 does not see Debian's dist-packages)."""
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if candidate and os.path.exists(candidate) and subprocess.run(
                [candidate, "-c", "import h11"], capture_output=True).returncode == 0:
            return candidate
    return None


def verdict_binary():
    path = os.environ.get("HTTP_VERDICT") or os.path.join(
        os.path.dirname(os.environ.get("PARLEYD", "")), "..", "tests", "http_verdict")
    return path if os.access(path, os.X_OK) else None


def strip_empty_lines(case):
    """RFC 9112 2.2: a server ignores empty lines before a request line
    (parley does); h11 refuses them, so it is given the case without."""
    n = 0
    while case[n:n + 2] == b"\r\n":
        n += 2
    return n, case[n:]


class Differential(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        gen = Gen(SEED)
        made = [gen.request() for _ in range(CASES)]
        cls.firsts = audit_cases() + [m[0] for m in made]
        cls.live = [False] * len(audit_cases()) + [m[1] for m in made]
        cls.methods = [b"POST"] * len(audit_cases()) + [m[2] for m in made]
        cls.cases = [c + SECOND % i for i, c in enumerate(cls.firsts)]
        cls.parley = cls.judge_parley(cls.cases)

    @staticmethod
    def judge_parley(cases):
        binary = verdict_binary()
        if binary is None:
            raise AssertionError("tests/http_verdict is not built: run 'make check' (or make tests/http_verdict) "
                                 "in the build directory, or set HTTP_VERDICT")
        out = subprocess.run([binary, str(MAX_HEADERS), str(MAX_BODY)], input=feed(cases),
                             capture_output=True, check=True, timeout=60 * SLOW).stdout
        lines = out.decode().splitlines()
        assert len(lines) == len(cases), "http_verdict answered %d of %d cases" % (len(lines), len(cases))
        return [line.split() for line in lines]

    def judge_h11(self):
        interpreter = h11_interpreter()
        if interpreter is None:
            self.fail("no python3 here can import h11: install python3-h11 (.ci/deps does) or pip install h11")
        stripped = [strip_empty_lines(c) for c in self.cases]
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run([interpreter, os.path.join(here, "h11_verdict.py")],
                             input=feed([s for _, s in stripped]), capture_output=True, check=True,
                             timeout=120 * SLOW).stdout
        verdicts = []
        for (skipped, case), line in zip(stripped, out.decode().splitlines()):
            words = line.split()
            if words[0] == "accept":
                words[1] = str(int(words[1]) + skipped)
            verdicts.append((words, case))
        self.assertEqual(len(verdicts), len(self.cases))
        return verdicts

    def test_framing_agrees_with_h11(self):
        failures = []
        tally = {"both refuse": 0, "both accept": 0, "stricter": 0}
        used = set()
        for i, (ours, (theirs, stripped)) in enumerate(zip(self.parley, self.judge_h11())):
            problem = None
            if theirs[0] == "reject":
                if ours[0] == "accept":
                    problem = "h11 refuses, parley accepts"
                tally["both refuse"] += 1
            elif ours[0] == "accept":
                tally["both accept"] += 1
                if ours[1:3] != theirs[1:3]:
                    problem = "parley ends the request at %s with body %s, h11 at %s with body %s" % (
                        ours[1], ours[2][:80], theirs[1], theirs[2][:80])
            else:
                request = Request(stripped, theirs[3], bytes.fromhex(theirs[2]) if theirs[2] != "-" else b"")
                why = [(what, status) for what, status, applies in STRICTER if applies(request)]
                tally["stricter"] += 1
                used.update(what for what, _ in why)
                if ours[0] == "incomplete":
                    problem = "h11 accepts, parley waits for more"
                elif not why:
                    problem = "parley refuses (%s) what h11 accepts, not on the list" % ours[1]
                elif int(ours[1]) not in [status for _, status in why]:
                    problem = "parley refuses with %s; the list says %s" % (ours[1], why)
            if problem:
                failures.append("case %d: %s\n  %r" % (i, problem, self.cases[i][:300]))
        self.assertEqual(failures, [], "%d disagreements, the first:\n%s" % (len(failures), "\n".join(failures[:8])))
        # The cases must keep covering both sides and the list.
        self.assertGreater(tally["both accept"], CASES // 4, tally)
        self.assertGreater(tally["both refuse"], CASES // 10, tally)
        self.assertGreater(len(used), len(STRICTER) // 2, sorted(used))

    def test_audit_shapes_refused(self):
        for i in range(len(audit_cases())):
            self.assertEqual(self.parley[i][0], "reject", self.cases[i])
            self.assertIn(self.parley[i][1], ("400", "501", "505"), self.cases[i])

    def test_live_parleyd_uses_the_decision(self):
        env = Env()
        self.addCleanup(env.close)
        p = env.parleyd({"workers": "1", "max_body": "%d" % MAX_BODY, "max_header_size": "%d" % MAX_HEADERS})
        rng = random.Random(SEED + 1)
        picked = [i for i in range(len(self.cases)) if i < len(audit_cases()) or (
            self.live[i] and self.parley[i][0] != "incomplete"
            and (self.parley[i][0] == "reject" or int(self.parley[i][1]) == len(self.firsts[i])))]
        accepted = [i for i in picked[len(audit_cases()):] if self.parley[i][0] == "accept"]
        refused = [i for i in picked[len(audit_cases()):] if self.parley[i][0] == "reject"]
        sample = picked[:len(audit_cases())] + rng.sample(accepted, LIVE_CASES // 2) + rng.sample(
            refused, LIVE_CASES // 2)
        for i in sample:
            out, closed = exchange(p.port, self.cases[i], timeout=3)
            got = responses(out, head_first=self.methods[i] == b"HEAD")
            statuses = [status for status, _, _ in got]
            what = "case %d %r -> %r" % (i, self.cases[i][:200], out[:300])
            self.assertTrue(closed, what)
            if self.parley[i][0] == "reject":
                self.assertEqual(statuses, [int(self.parley[i][1])], what)
                continue
            keep_alive = b" HTTP/1.1\r" in self.firsts[i].split(b"\n", 1)[0]
            self.assertEqual(len(got), 2 if keep_alive else 1, what)
            if keep_alive:
                self.assertEqual((statuses[1], got[1][1].get("x-request-id")), (200, "second-%d" % i), what)
        self.assertNotIn("worker_died", p.log())


if __name__ == "__main__":
    unittest.main()
