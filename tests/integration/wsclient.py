"""wsclient.py - a strict RFC 6455 client on a raw socket, for testing a server.

Standard library only and single-threaded: nothing is read unless a test asks
for it, so every exchange happens in the order the test spells out.  It can
send anything a broken or hostile client would (unmasked frames, RSV bits,
reserved opcodes, lying lengths), and it checks what the server sends back
as strictly as a browser would: server frames must be unmasked, carry no RSV
bits (but RSV1 on a message's first frame when permessage-deflate was
negotiated), control frames must be short and unfragmented, close codes
valid, and text valid UTF-8.  With permessage-deflate it also holds the
server to its answer (RFC 7692): compressed messages must inflate on their
own (no context takeover) within the window the server named."""

import base64
import hashlib
import json
import os
import socket
import struct
import time
import zlib

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

TAIL = b"\x00\x00\xff\xff"


def parse_extensions(value):
    """A Sec-WebSocket-Extensions value as [(name, {param: value or None})]."""
    out = []
    for ext in value.split(","):
        parts = [p.strip() for p in ext.split(";")]
        params = {}
        for p in parts[1:]:
            name, eq, v = p.partition("=")
            if name.strip() in params:
                raise ProtocolViolation("parameter %r repeated in %r" % (name, value))
            params[name.strip()] = v.strip().strip('"') if eq else None
        out.append((parts[0], params))
    return out


def deflate_message(data, wbits=15, final=False):
    """DATA as a permessage-deflate payload of its own (the tail removed)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    if final:
        return c.compress(data) + c.flush(zlib.Z_FINISH)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


# Codes a server may put in a close frame (RFC 6455 7.4, not the reserved ones).
_VALID_CLOSE = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))


def accept_for(key):
    """The Sec-WebSocket-Accept a server must answer to KEY."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


class ProtocolViolation(AssertionError):
    """The server broke RFC 6455 (or the test's expectations of framing)."""


class ConnectionClosed(AssertionError):
    """A close frame or the end of the TCP stream came where data was expected."""

    def __init__(self, code=None, reason="", eof=False):
        AssertionError.__init__(self, "connection closed (code=%r reason=%r eof=%s)" % (code, reason, eof))
        self.code, self.reason, self.eof = code, reason, eof


class HTTPResponse:
    """A response to a handshake: status, lower-cased headers, body, and the
    bytes that followed the head (frames, after a 101)."""

    def __init__(self, status, reason, headers, body, header_list):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.header_list = header_list
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<HTTPResponse %d %r %r>" % (self.status, self.headers, self.body[:200])


def _recv_head(sock, deadline):
    """Reads up to the blank line after the headers; returns (head, rest)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionClosed(eof=True)
        buf += chunk
        if len(buf) > 65536:
            raise ProtocolViolation("response head too long")
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def _parse_head(head):
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ProtocolViolation("bad status line %r" % lines[0])
    headers, header_list = {}, []
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if not sep:
            raise ProtocolViolation("bad header line %r" % line)
        k, v = k.strip().lower(), v.strip()
        header_list.append((k, v))
        headers[k] = headers[k] + ", " + v if k in headers else v
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers, header_list


def _read_body(sock, headers, rest, deadline):
    """The body of a non-101 response: Content-Length, chunked, or to EOF."""
    def more():
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        return sock.recv(65536)

    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            chunk = more()
            if not chunk:
                raise ConnectionClosed(eof=True)
            rest += chunk
        return rest[:n]
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            while b"\r\n" not in rest:
                chunk = more()
                if not chunk:
                    raise ConnectionClosed(eof=True)
                rest += chunk
            line, _, rest = rest.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            while len(rest) < size + 2:
                chunk = more()
                if not chunk:
                    raise ConnectionClosed(eof=True)
                rest += chunk
            if size == 0:
                return body
            body += rest[:size]
            rest = rest[size + 2:]
    while True:
        chunk = more()
        if not chunk:
            return rest
        rest += chunk


def build_request(path, headers, method="GET", host="127.0.0.1"):
    """Request bytes with exactly HEADERS (a list of pairs, or a dict); a
    value of None leaves that header out."""
    items = headers.items() if isinstance(headers, dict) else headers
    lines = ["%s %s HTTP/1.1" % (method, path)]
    if not any(k.lower() == "host" for k, _ in items):
        lines.append("Host: " + host)
    lines += ["%s: %s" % (k, v) for k, v in items if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def upgrade_headers(key=None, extra=None):
    """The headers of a valid upgrade request, as an ordered dict that tests
    edit (set a value to None to drop a header)."""
    h = {"Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Key": key or new_key(), "Sec-WebSocket-Version": "13"}
    h.update(extra or {})
    return h


def raw_handshake(port, request, timeout=10.0, rcvbuf=None):
    """Sends REQUEST (bytes) on a new connection and reads the response.
    Returns (HTTPResponse, socket, leftover bytes); after a 101 the socket
    carries frames and no body is read, otherwise the body is read and the
    socket is closed.  RCVBUF sets SO_RCVBUF before connecting (a small one
    makes a slow consumer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    try:
        sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    deadline = time.monotonic() + timeout
    try:
        sock.sendall(request)
        head, rest = _recv_head(sock, deadline)
        status, reason, headers, header_list = _parse_head(head)
        if status == 101:
            return HTTPResponse(status, reason, headers, b"", header_list), sock, rest
        body = _read_body(sock, headers, rest, deadline)
    except BaseException:
        sock.close()
        raise
    sock.close()
    return HTTPResponse(status, reason, headers, body, header_list), None, b""


def handshake(port, path, headers=None, method="GET", timeout=10.0):
    """An upgrade request that is expected to be refused: sends a valid
    upgrade request changed by HEADERS (None values drop a header) and
    returns the HTTPResponse.  A 101 is closed at once and returned too."""
    resp, sock, _ = raw_handshake(port, build_request(path, upgrade_headers(extra=headers), method), timeout)
    if sock is not None:
        sock.close()
    return resp


class WSClient:
    def __init__(self, sock, leftover=b"", response=None, timeout=10.0):
        self.sock = sock
        self.buf = bytearray(leftover)
        self.response = response
        self.timeout = timeout
        self.pings = []             # payloads of pings received (and answered)
        self.pongs = []             # payloads of pongs received
        self.skipped = []           # messages passed over by recv_json/expect_close
        self.close_sent = False
        self.close_received = None  # (code, reason)
        self._message = None        # (opcode, [payloads], compressed) of a message in progress
        self.deflate = None         # the server's permessage-deflate parameters, when accepted
        self.server_bits = 15       # the window the server may compress with
        self.compressed = 0         # messages received compressed
        self.wire_bytes = 0         # bytes of every frame received
        self._rsv1 = False          # the last frame parsed had RSV1

    # --- opening -----------------------------------------------------------

    @classmethod
    def connect(cls, port, path, headers=None, origin=None, timeout=10.0, rcvbuf=None, deflate=None):
        """Opens a WebSocket to PATH; checks the 101 response strictly.
        DEFLATE is a Sec-WebSocket-Extensions offer (True: a browser's)."""
        key = new_key()
        h = upgrade_headers(key)
        if origin is not None:
            h["Origin"] = origin
        if deflate is not None:
            h["Sec-WebSocket-Extensions"] = ("permessage-deflate; client_max_window_bits"
                                             if deflate is True else deflate)
        h.update(headers or {})
        resp, sock, rest = raw_handshake(port, build_request(path, h), timeout, rcvbuf)
        if resp.status != 101:
            raise AssertionError("handshake refused: %d %r %r" % (resp.status, resp.headers, resp.body))
        try:
            if resp.headers.get("upgrade", "").lower() != "websocket":
                raise ProtocolViolation("101 without Upgrade: websocket: %r" % resp.headers)
            if "upgrade" not in [t.strip().lower() for t in resp.headers.get("connection", "").split(",")]:
                raise ProtocolViolation("101 without Connection: Upgrade: %r" % resp.headers)
            if resp.headers.get("sec-websocket-accept") != accept_for(key):
                raise ProtocolViolation("bad Sec-WebSocket-Accept %r for key %r"
                                        % (resp.headers.get("sec-websocket-accept"), key))
            accepted = cls._check_extensions(resp.headers.get("sec-websocket-extensions"),
                                             h.get("Sec-WebSocket-Extensions"))
            if "sec-websocket-protocol" in resp.headers:
                raise ProtocolViolation("server chose a subprotocol nobody offered")
        except BaseException:
            sock.close()
            raise
        c = cls(sock, rest, resp, timeout)
        if accepted is not None:
            c.deflate = accepted
            c.server_bits = int(accepted.get("server_max_window_bits") or 15)
        return c

    @staticmethod
    def _check_extensions(answer, offer):
        """The server's permessage-deflate parameters, None when it took no
        extension; a ProtocolViolation for an answer RFC 7692 forbids."""
        if answer is None:
            return None
        if offer is None:
            raise ProtocolViolation("server chose an extension nobody offered: %r" % answer)
        exts = parse_extensions(answer)
        if len(exts) != 1 or exts[0][0] != "permessage-deflate":
            raise ProtocolViolation("server answered %r to %r" % (answer, offer))
        params = exts[0][1]
        offered = {}
        for name, p in parse_extensions(offer):
            if name == "permessage-deflate":
                offered.update(p)
        for name, value in params.items():
            if name in ("server_no_context_takeover", "client_no_context_takeover"):
                if value is not None:
                    raise ProtocolViolation("%s with a value in %r" % (name, answer))
            elif name in ("server_max_window_bits", "client_max_window_bits"):
                if name not in offered:
                    raise ProtocolViolation("%s answered but not offered: %r" % (name, answer))
                if value is None or not value.isdigit() or not 8 <= int(value) <= 15:
                    raise ProtocolViolation("bad %s in %r" % (name, answer))
                if offered[name] is not None and int(value) > int(offered[name]):
                    raise ProtocolViolation("%s above the offer in %r" % (name, answer))
            else:
                raise ProtocolViolation("unknown parameter %r in %r" % (name, answer))
        return params

    # --- sending -----------------------------------------------------------

    def send_raw(self, data):
        self.sock.sendall(data)

    @staticmethod
    def encode_frame(opcode, payload, fin=True, mask=True, rsv=0, length_override=None, mask_key=None):
        """One frame's bytes.  RSV is the 3-bit value (4 = RSV1, 2 = RSV2,
        1 = RSV3).  LENGTH_OVERRIDE puts another length in the header: an int
        picks the shortest encoding, a pair (form, value) forces one:
        form 7 (the 7-bit field), 16 or 64."""
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
        form, n = None, len(payload)
        if isinstance(length_override, tuple):
            form, n = length_override
        elif length_override is not None:
            n = length_override
        if form is None:
            form = 7 if n < 126 else 16 if n < 65536 else 64
        mbit = 0x80 if mask else 0
        if form == 7:
            head = struct.pack("!BB", b0, mbit | n)
        elif form == 16:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if not mask:
            return head + payload
        key = mask_key if mask_key is not None else os.urandom(4)
        masked = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        return head + key + masked

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0, length_override=None):
        self.sock.sendall(self.encode_frame(opcode, payload, fin, mask, rsv, length_override))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text)

    def send_json(self, doc):
        self.send_text(json.dumps(doc))

    def send_compressed(self, text, fragments=1, final=False):
        """TEXT as one compressed message (RSV1 on its first frame only),
        in FRAGMENTS frames."""
        data = deflate_message(text.encode() if isinstance(text, str) else text, final=final)
        step = max(1, -(-len(data) // fragments))
        pieces = [data[i:i + step] for i in range(0, len(data), step)] or [b""]
        for i, piece in enumerate(pieces):
            self.send_frame(OP_TEXT if i == 0 else OP_CONT, piece, fin=i == len(pieces) - 1,
                            rsv=4 if i == 0 else 0)

    def ping(self, payload=b""):
        self.send_frame(OP_PING, payload)

    def close(self, code=1000, reason=""):
        """Starts the closing handshake (None: a close frame without a code)."""
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
        try:
            self.send_frame(OP_CLOSE, payload)
        except OSError:
            pass
        self.close_sent = True

    def shutdown(self):
        """Drops the TCP connection without a closing handshake."""
        try:
            self.sock.close()
        except OSError:
            pass

    # --- receiving ---------------------------------------------------------

    def _fill(self, deadline):
        """Reads more bytes; raises socket.timeout past DEADLINE and
        ConnectionClosed(eof=True) at the end of the stream."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out waiting for a frame")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            raise ConnectionClosed(eof=True)
        if not chunk:
            raise ConnectionClosed(eof=True)
        self.buf += chunk

    def _parse_one(self):
        """A complete frame from the buffer, or None."""
        b = self.buf
        if len(b) < 2:
            return None
        b0, b1 = b[0], b[1]
        n, pos = b1 & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, pos = struct.unpack("!H", b[2:4])[0], 4
            if n < 126:
                raise ProtocolViolation("16-bit length %d not minimal" % n)
        elif n == 127:
            if len(b) < 10:
                return None
            n, pos = struct.unpack("!Q", b[2:10])[0], 10
            if n >> 63:
                raise ProtocolViolation("64-bit length with the top bit set")
            if n < 65536:
                raise ProtocolViolation("64-bit length %d not minimal" % n)
        if b1 & 0x80:
            raise ProtocolViolation("server frame is masked")
        if len(b) < pos + n:
            return None
        payload = bytes(b[pos:pos + n])
        del b[:pos + n]
        self.wire_bytes += pos + n
        fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF
        self._rsv1 = rsv == 4
        if rsv and not (rsv == 4 and self.deflate is not None and opcode in (OP_TEXT, OP_BINARY)):
            raise ProtocolViolation("server frame has RSV bits %d (opcode %#x)" % (rsv, opcode))
        if opcode in (3, 4, 5, 6, 7) or opcode > 0xA:
            raise ProtocolViolation("server frame has reserved opcode %#x" % opcode)
        if opcode >= 8 and (not fin or n > 125):
            raise ProtocolViolation("server control frame fragmented or %d bytes long" % n)
        return opcode, payload, fin

    def recv_frame(self, timeout=None, auto_pong=True):
        """The next frame as (opcode, payload, fin).  Pings are answered and
        recorded in self.pings, and not returned, unless AUTO_PONG is false.
        Raises socket.timeout, ConnectionClosed(eof=True) at the end of the
        stream, ProtocolViolation for a frame no server may send."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            frame = self._parse_one()
            if frame is None:
                self._fill(deadline)
                continue
            opcode, payload, fin = frame
            if self.close_received is not None:
                raise ProtocolViolation("frame %#x after the server's close frame" % opcode)
            if opcode == OP_PING:
                self.pings.append(payload)
                if not auto_pong:
                    return frame
                if not self.close_sent:
                    try:
                        self.send_frame(OP_PONG, payload)
                    except OSError:
                        pass
                continue
            if opcode == OP_PONG:
                self.pongs.append(payload)
            elif opcode == OP_CLOSE:
                self.close_received = self._parse_close(payload)
            return frame

    @staticmethod
    def _parse_close(payload):
        if len(payload) == 0:
            return 1005, ""
        if len(payload) == 1:
            raise ProtocolViolation("close frame with a 1-byte payload")
        code = struct.unpack("!H", payload[:2])[0]
        if code not in _VALID_CLOSE:
            raise ProtocolViolation("server sent invalid close code %d" % code)
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation("close reason is not UTF-8: %r" % payload[2:])
        return code, reason

    def recv_message(self, timeout=None):
        """The next complete data message as (opcode, bytes), reassembling
        fragments and skipping control frames.  A close frame raises
        ConnectionClosed(code, reason)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            opcode, payload, fin = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if opcode == OP_CLOSE:
                raise ConnectionClosed(*self.close_received)
            if opcode == OP_PONG:
                continue
            if opcode == OP_CONT:
                if self._message is None:
                    raise ProtocolViolation("continuation frame without a message")
                self._message[1].append(payload)
            else:
                if self._message is not None:
                    raise ProtocolViolation("new data frame inside a fragmented message")
                self._message = (opcode, [payload], self._rsv1)
            if fin:
                opcode, parts, compressed = self._message
                self._message = None
                data = b"".join(parts)
                if compressed:
                    data = self._inflate(data)
                if opcode == OP_TEXT:
                    try:
                        data.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ProtocolViolation("text message is not UTF-8: %r" % data[:100])
                return opcode, data

    def _inflate(self, data):
        """A compressed message on its own, in the server's window: a
        server that kept context, or used a wider window, fails here."""
        self.compressed += 1
        d = zlib.decompressobj(-self.server_bits)
        try:
            out = d.decompress(data + TAIL)
        except zlib.error as e:
            raise ProtocolViolation("compressed message does not inflate on its own: %s" % e)
        if d.unconsumed_tail:
            raise ProtocolViolation("compressed message with bytes past its end")
        return out

    def recv_json(self, timeout=None, type=None):
        """The next text message, parsed (skipping pings and pongs).  With
        TYPE, messages of other types are skipped into self.skipped."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            opcode, data = self.recv_message(max(0.0, deadline - time.monotonic()))
            if opcode != OP_TEXT:
                raise ProtocolViolation("server sent a non-text message (opcode %#x)" % opcode)
            doc = json.loads(data.decode("utf-8"))
            if type is None or (isinstance(doc, dict) and doc.get("type") == type):
                return doc
            self.skipped.append(doc)

    def recv_until(self, predicate, timeout=None):
        """Messages up to and including the first one PREDICATE accepts;
        returns the list (the accepted one last)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        got = []
        while True:
            doc = self.recv_json(max(0.0, deadline - time.monotonic()))
            got.append(doc)
            if predicate(doc):
                return got

    def drain(self, quiet=0.3):
        """Every message that arrives until none comes for QUIET seconds."""
        got = []
        while True:
            try:
                got.append(self.recv_json(quiet))
            except socket.timeout:
                return got

    def expect_close(self, timeout=None, echo=True):
        """Waits for the server's close frame (data messages before it are
        kept in self.skipped) and returns its (code, reason); answers it
        unless we started the close; then checks that the server closes the
        TCP connection."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while self.close_received is None:
            try:
                opcode, payload, fin = self.recv_frame(max(0.0, deadline - time.monotonic()))
            except ConnectionClosed:
                raise AssertionError("TCP connection ended without a close frame")
            if opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                self.skipped.append((opcode, payload))
        code, reason = self.close_received
        if echo and not self.close_sent:
            self.close(None if code == 1005 else code)
        self.expect_eof(max(0.5, deadline - time.monotonic()))
        return code, reason

    def expect_eof(self, timeout=None):
        """Asserts that the server ends the TCP connection (FIN or RST) and
        sends nothing more before it."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("server did not close the TCP connection")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return
            except socket.timeout:
                continue
            if not chunk:
                return
            if self.close_received is not None:
                raise ProtocolViolation("data after the server's close frame: %r" % chunk[:50])
            self.buf += chunk

    def fileno(self):
        return self.sock.fileno()
