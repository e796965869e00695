"""fakeai.py - a fake OpenAI-compatible chat completions server for the tests.

Standard library only: a threading HTTP server on a free port of 127.0.0.1
that answers POST /v1/chat/completions the way llama-server, vLLM or OpenAI
do - or fails the ways they can.  The behaviour is picked per request by a
tag such as "[stall]" in the last message (so tests can share one server),
else by FakeAI.mode:

  ok         the answer streamed as SSE in an HTTP/1.1 chunked body, a few
             pieces with small delays, events cut across chunks, a role-only
             first delta, a keep-alive comment, one event spread over
             several data: lines, finish_reason, then [DONE]
  crlf       the same with CRLF line ends, written a few bytes at a time
  close      the same with no length (the server closes at the end), and
             no [DONE]: the end of the stream after finish_reason ends it
  length     the whole event stream with a Content-Length
  json       one application/json completion, not streamed
  error500   500 with an OpenAI-style JSON error
  error401   401 whose message echoes the bearer key (as some servers do)
  errorlong  500 with a long message of two-byte characters
  malformed  a first good event, then one that is not JSON
  nochoices  an event that is JSON without "choices"
  badbytes   a piece that is not UTF-8, then an error event whose message
             has bad bytes, a newline and quotes
  stall      the first piece, then nothing until the client goes away
  stallstart headers, then nothing until the client goes away
  cut        two pieces, then the socket closes mid-body
  lfchunks   the ok stream, its chunk lines ended by a bare LF (not HTTP)
  slow       a piece every 50 ms for ten seconds (or until the client leaves),
             then a proper end

It also plays an agent service of the kind agent = sse talks to (FastAPI
with sse-starlette's EventSourceResponse, Pydantic AI, LangChain): GET
/chat/stream?query=...&room=...&user=... answers with "event: ai_chunk" /
"data: {"content":..., "done": false, "timestamp": ...}" events (CRLF line
ends, ": ping" comments), then {"content": "", "done": true}.  Its tags:
ok, error500 (FastAPI's {"detail": ...}), malformed, stall, cut, nodone
(the stream ends without "done") and slow.

Every request is recorded (path, lower-cased headers, parsed body or
query), and so is every stream whose client went away before its end
(disconnects)."""

import http.server
import json
import urllib.parse
import re
import select
import socket
import threading
import time

ANSWER_PIECES = ["Hello", " from", " the", " fake", " model,", " streamed", " in", " pieces."]
ANSWER = "".join(ANSWER_PIECES)
ERROR_MESSAGE = "model overloaded, try later"

_TAG = re.compile(r"\[(\w+)\]")


def _chunk(content=None, role=None, finish=None):
    delta = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": "fake",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _event(obj, nl="\n", multiline=False):
    """One SSE event; MULTILINE spreads the JSON over several data: lines."""
    text = json.dumps(obj, indent=1) if multiline else json.dumps(obj)
    return "".join("data: " + line + nl for line in text.split("\n")) + nl


def answer_events(nl="\n", done=True):
    """The answer as a list of SSE event strings."""
    out = [": keep-alive" + nl + nl, _event(_chunk(role="assistant", content=""), nl)]
    for i, piece in enumerate(ANSWER_PIECES):
        last = i == len(ANSWER_PIECES) - 1
        out.append(_event(_chunk(content=piece, finish="stop" if last else None), nl, multiline=(i == 2)))
    if done:
        out.append("data: [DONE]" + nl + nl)
    return out


class Disconnected(Exception):
    pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    # --- writing -----------------------------------------------------------

    def _write(self, data):
        try:
            self.wfile.write(data.encode() if isinstance(data, str) else data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            raise Disconnected()

    def _head(self, status=200, ctype="text/event-stream", chunked=True, length=None, version=None):
        line = "%s %d %s\r\n" % (version or "HTTP/1.1", status, self.responses.get(status, ("X",))[0])
        head = [line, "Content-Type: %s\r\n" % ctype, "Cache-Control: no-cache\r\n"]
        if chunked:
            head.append("Transfer-Encoding: chunked\r\n")
        elif length is not None:
            head.append("Content-Length: %d\r\n" % length)
        head.append("Connection: close\r\n\r\n")
        self._write("".join(head))

    def _chunks(self, data, sizes):
        """DATA (text or bytes) as HTTP chunks of the sizes in SIZES, cycled."""
        data = data.encode() if isinstance(data, str) else data
        i = k = 0
        while i < len(data):
            n = sizes[k % len(sizes)]
            k += 1
            piece = data[i:i + n]
            i += n
            self._write(b"%x\r\n%s\r\n" % (len(piece), piece))

    def _end_chunks(self):
        self._write("0\r\n\r\n")

    def _wait_gone(self, seconds):
        """Sleeps up to SECONDS; raises Disconnected as soon as the client
        closes its end (the request body was read, so readable means EOF)."""
        deadline = time.monotonic() + seconds
        # poll, not select: a benchmark may hold more than 1024 sockets.
        poller = select.poll()
        poller.register(self.connection, select.POLLIN)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if poller.poll(left * 1000):
                try:
                    data = self.connection.recv(1, socket.MSG_PEEK)
                except (ConnectionResetError, OSError):
                    data = b""
                if not data:
                    raise Disconnected()
                time.sleep(min(left, 0.01))

    # --- the request -------------------------------------------------------

    def do_POST(self):
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        mode = fake.mode
        try:
            m = _TAG.search(body["messages"][-1]["content"])
            if m:
                mode = m.group(1)
        except (TypeError, KeyError, IndexError):
            pass
        with fake.cond:
            fake.requests.append({"path": self.path, "mode": mode, "body": body,
                                  "headers": {k.lower(): v for k, v in self.headers.items()}})
            fake.cond.notify_all()
        self.close_connection = True
        try:
            getattr(self, "mode_" + mode)()
        except Disconnected:
            with fake.cond:
                fake.disconnects.append(mode)
                fake.cond.notify_all()

    def do_GET(self):
        fake = self.server.fake
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        m = _TAG.search(query.get("query", ""))
        mode = m.group(1) if m else "ok"
        with fake.cond:
            fake.requests.append({"path": url.path, "mode": mode, "query": query, "body": None,
                                  "headers": {k.lower(): v for k, v in self.headers.items()}})
            fake.cond.notify_all()
        self.close_connection = True
        try:
            getattr(self, "sse_" + mode)()
        except Disconnected:
            with fake.cond:
                fake.disconnects.append("sse_" + mode)
                fake.cond.notify_all()

    @staticmethod
    def _sse_chunk(content, done=False, event="ai_chunk"):
        return "event: %s\r\ndata: %s\r\n\r\n" % (event, json.dumps({"content": content, "done": done,
                                                                       "timestamp": 1700000000.5}))

    def _sse_answer(self, done=True):
        events = [": ping\r\n\r\n"] + [self._sse_chunk(p) for p in ANSWER_PIECES]
        return events + [self._sse_chunk("", True)] if done else events

    def sse_ok(self):
        self._stream(self._sse_answer())

    def sse_error500(self):
        data = json.dumps({"detail": ERROR_MESSAGE}).encode()
        self._head(500, ctype="application/json", chunked=False, length=len(data))
        self._write(data)

    def sse_malformed(self):
        self._stream(self._sse_answer()[:3] + ["event: ai_chunk\r\ndata: {oops\r\n\r\n"])

    def sse_stall(self):
        self._head()
        self._chunks("".join(self._sse_answer()[:3]), [100])
        self._wait_gone(10)

    def sse_cut(self):
        self._head()
        self._chunks("".join(self._sse_answer()[:3]), [100])
        self._wait_gone(0.01)
        self.connection.shutdown(socket.SHUT_RDWR)

    def sse_nodone(self):
        self._stream(self._sse_answer(done=False))

    def sse_slow(self):
        self._head()
        for i in range(200):
            self._chunks(self._sse_chunk("w%d " % i), [100])
            self._wait_gone(0.05)
        self._chunks(self._sse_chunk("end.", True), [100])
        self._end_chunks()

    def _stream(self, events, sizes=(7, 50, 3, 200), delay=0.01):
        self._head()
        for i, ev in enumerate(events):
            if i > 0:
                self._wait_gone(delay)
            self._chunks(ev, list(sizes))
        self._end_chunks()

    def mode_ok(self):
        self._stream(answer_events())

    def mode_crlf(self):
        self._stream(answer_events("\r\n"), sizes=(1, 2, 3, 5, 1, 8))

    def mode_close(self):
        self._head(chunked=False, version="HTTP/1.0")
        for i, ev in enumerate(answer_events(done=False)):
            if i > 0:
                self._wait_gone(0.01)
            self._write(ev)

    def mode_length(self):
        data = "".join(answer_events()).encode()
        self._head(chunked=False, length=len(data))
        self._write(data)

    def mode_json(self):
        data = json.dumps({"id": "chatcmpl-fake", "object": "chat.completion", "model": "fake",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": ANSWER}}]}).encode()
        self._head(ctype="application/json", chunked=False, length=len(data))
        self._write(data)

    def _error(self, status, message):
        data = json.dumps({"error": {"message": message, "type": "server_error", "code": status}}).encode()
        self._head(status, ctype="application/json", chunked=False, length=len(data))
        self._write(data)

    def mode_error500(self):
        self._error(500, ERROR_MESSAGE)

    def mode_errorlong(self):
        self._error(500, "x" + "\u00e9" * 200)

    def mode_error401(self):
        key = self.headers.get("Authorization", "").partition(" ")[2]
        self._error(401, "Incorrect API key provided: %s." % key)

    def mode_malformed(self):
        self._stream(answer_events()[:3] + ["data: {\"choices\": [oops\n\n"] + answer_events()[3:])

    def mode_nochoices(self):
        self._stream([_event({"id": "chatcmpl-fake", "object": "chat.completion.chunk"})] + answer_events())

    def mode_badbytes(self):
        events = answer_events()[:3]
        events.append(b'data: {"choices":[{"index":0,"delta":{"content":"caf\xe9 \xff"}}]}\n\n')
        events.append(b'data: {"error":{"message":"bad \xfe\xff bytes,\\n \\"quoted\\""}}\n\n')
        self._stream(events)

    def mode_stall(self):
        self._head()
        for ev in answer_events()[:3]:
            self._chunks(ev, [100])
        self._wait_gone(10)

    def mode_stallstart(self):
        self._head()
        self._wait_gone(10)

    def mode_cut(self):
        self._head()
        for ev in answer_events()[:4]:
            self._chunks(ev, [100])
            self._wait_gone(0.01)
        self.connection.shutdown(socket.SHUT_RDWR)

    def mode_lfchunks(self):
        self._head()
        data = "".join(answer_events()).encode()
        for i in range(0, len(data), 40):
            self._write(b"%x\n%s\n" % (len(data[i:i + 40]), data[i:i + 40]))
        self._write("0\n\n")

    def mode_slow(self):
        self._head()
        self._chunks(answer_events()[1], [100])
        for i in range(200):
            self._chunks(_event(_chunk(content="w%d " % i)), [100])
            self._wait_gone(0.05)
        self._chunks(_event(_chunk(content="end.", finish="stop")) + "data: [DONE]\n\n", [100])
        self._end_chunks()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 4096   # benchmarks open a thousand streams at once


class FakeAI:
    """The server, on 127.0.0.1 and a free port, serving from a thread."""

    def __init__(self, mode="ok"):
        self.mode = mode
        self.requests = []
        self.disconnects = []
        self.cond = threading.Condition()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.fake = self
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def _wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("fake agent: timed out waiting for " + what)
                self.cond.wait(left)

    def wait_request(self, tag, timeout=5.0):
        """The first recorded request whose last message (or GET query)
        contains TAG."""
        def find():
            for r in self.requests:
                try:
                    if tag in (r["query"]["query"] if r["body"] is None else r["body"]["messages"][-1]["content"]):
                        return r
                except (TypeError, KeyError, IndexError):
                    pass
            return None
        self._wait(lambda: find() is not None, timeout, "a request with " + tag)
        with self.cond:
            return find()

    def wait_disconnects(self, mode, n=1, timeout=5.0):
        """Waits until N streams of MODE saw their client go away."""
        self._wait(lambda: self.disconnects.count(mode) >= n, timeout, "%d disconnects in %s" % (n, mode))

    def close(self):
        self.server.shutdown()
        self.server.server_close()
