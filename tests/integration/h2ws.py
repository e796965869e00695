"""h2ws.py - WebSocket over HTTP/2 (RFC 8441) with the standard library only,
for tests through HAProxy's TLS front.

    ws = h2ws.connect(port, "/ws/chat/lobby", {"authorization": "Bearer " + token})
    ws.recv_json(type="welcome"); ws.send_json({...}); ws.expect_close()

connect() opens one TLS connection (ALPN h2), sends one extended CONNECT
and returns a wsclient.WSClient whose socket is that HTTP/2 stream (an
H2Stream): the WebSocket frames are written and checked by the same strict
code as over HTTP/1.1.  The HTTP/2 side is small but a correct peer for a
long test (RFC 9113):

- SETTINGS are applied and acknowledged, PINGs answered, PRIORITY and
  unknown frame types ignored, padding and CONTINUATION understood;
- flow control both ways: what the test reads is given back to the server
  with WINDOW_UPDATE, and what it writes waits for the server's windows and
  is cut to its SETTINGS_MAX_FRAME_SIZE;
- a GOAWAY only means "no new streams" (HAProxy sends one on a reload):
  the open stream goes on unless the GOAWAY excludes it; an RST_STREAM
  reads as a connection reset, the stream's end as the end of the stream.

HPACK: response headers are decoded with the static and dynamic tables;
Huffman-coded strings are refused with a clear error (HAProxy's encoder
never uses them).  Requests are sent as literals that touch no table.

The client must not send WebSocket data before the server's 200: HAProxy
2.6 answers such a CONNECT with 500; connect() returns only after the 200."""

import socket
import ssl
import struct
import time

from wsclient import HTTPResponse, WSClient

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE = 1, 2, 4
SETTINGS_MAX_FRAME_SIZE, SETTINGS_ENABLE_CONNECT_PROTOCOL = 5, 8

DEFAULT_WINDOW = 65535

# RFC 7541 Appendix A.
_STATIC = [
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"), (":path", "/index.html"),
    (":scheme", "http"), (":scheme", "https"), (":status", "200"), (":status", "204"), (":status", "206"),
    (":status", "304"), (":status", "400"), (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""), ("accept", ""),
    ("access-control-allow-origin", ""), ("age", ""), ("allow", ""), ("authorization", ""),
    ("cache-control", ""), ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""),
    ("content-length", ""), ("content-location", ""), ("content-range", ""), ("content-type", ""),
    ("cookie", ""), ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""), ("max-forwards", ""),
    ("proxy-authenticate", ""), ("proxy-authorization", ""), ("range", ""), ("referer", ""), ("refresh", ""),
    ("retry-after", ""), ("server", ""), ("set-cookie", ""), ("strict-transport-security", ""),
    ("transfer-encoding", ""), ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
]


class H2Error(AssertionError):
    """The server broke HTTP/2 or HPACK (or used what this client refuses)."""


def hpack_int_encode(value, prefix_bits):
    """VALUE as an HPACK integer with a PREFIX_BITS prefix, the first
    byte's other bits 0 (RFC 7541 5.1)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([value])
    out = [limit]
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name, value):
    """A header as a literal without indexing with a new name, no Huffman
    (RFC 7541 6.2.2): it changes neither side's dynamic table."""
    name, value = name.encode("latin-1"), value.encode("latin-1")
    return b"\x00" + hpack_int_encode(len(name), 7) + name + hpack_int_encode(len(value), 7) + value


class HpackDecoder:
    """One connection's HPACK decoding state (its dynamic table)."""

    def __init__(self, max_size=4096):
        self.table = []             # newest first: (name, value)
        self.size = 0
        self.max_size = max_size    # what our SETTINGS allow
        self.limit = max_size       # the encoder's current choice

    @staticmethod
    def _int(block, pos, prefix_bits):
        if pos >= len(block):
            raise H2Error("HPACK integer past the end of the block")
        limit = (1 << prefix_bits) - 1
        value = block[pos] & limit
        pos += 1
        if value < limit:
            return value, pos
        shift = 0
        while True:
            if pos >= len(block) or shift > 28:
                raise H2Error("HPACK integer truncated or too large")
            b = block[pos]
            pos += 1
            value += (b & 127) << shift
            shift += 7
            if not b & 128:
                return value, pos

    def _str(self, block, pos):
        if pos >= len(block):
            raise H2Error("HPACK string past the end of the block")
        huffman = block[pos] & 0x80
        n, pos = self._int(block, pos, 7)
        if pos + n > len(block):
            raise H2Error("HPACK string longer than the block")
        if huffman:
            raise H2Error("Huffman-coded HPACK string (this client only reads raw strings)")
        return block[pos:pos + n].decode("latin-1"), pos + n

    def _entry(self, index):
        if 1 <= index <= len(_STATIC):
            return _STATIC[index - 1]
        if 0 < index - len(_STATIC) <= len(self.table):
            return self.table[index - len(_STATIC) - 1]
        raise H2Error("HPACK index %d out of range" % index)

    def _evict(self):
        while self.size > self.limit:
            name, value = self.table.pop()
            self.size -= len(name) + len(value) + 32

    def _add(self, name, value):
        self.table.insert(0, (name, value))
        self.size += len(name) + len(value) + 32
        self._evict()

    def decode(self, block):
        """The header list of one complete header block."""
        headers, pos = [], 0
        while pos < len(block):
            b = block[pos]
            if b & 0x80:                                   # indexed field
                index, pos = self._int(block, pos, 7)
                headers.append(self._entry(index))
                continue
            if b & 0xE0 == 0x20:                           # dynamic table size update
                size, pos = self._int(block, pos, 5)
                if size > self.max_size:
                    raise H2Error("HPACK table size %d over our limit" % size)
                self.limit = size
                self._evict()
                continue
            indexing = b & 0xC0 == 0x40                     # else without / never indexed
            index, pos = self._int(block, pos, 6 if indexing else 4)
            if index:
                name = self._entry(index)[0]
            else:
                name, pos = self._str(block, pos)
            value, pos = self._str(block, pos)
            headers.append((name, value))
            if indexing:
                self._add(name, value)
        return headers


def frame_encode(ftype, flags, stream, payload=b""):
    return struct.pack("!I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack("!I", stream) + payload


def _strip_padding(flags, payload):
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise H2Error("padding longer than the frame")
    return payload[1:len(payload) - payload[0]]


class H2Stream:
    """Stream 1 of one HTTP/2 connection, looking like a socket to
    wsclient.WSClient: recv, sendall, settimeout, close, fileno."""

    STREAM = 1

    def __init__(self, sock):
        self.sock = sock
        self.timeout = None
        self.rbuf = bytearray()         # bytes of frames not yet parsed
        self.inbuf = bytearray()        # our stream's data not yet handed out
        self.hpack = HpackDecoder()
        self.peer_settings = {}
        self.settings_received = False
        self.send_window = DEFAULT_WINDOW          # connection
        self.stream_send_window = DEFAULT_WINDOW
        self.max_frame = 16384
        self.unacked = 0                # bytes handed out but not yet given back in WINDOW_UPDATE
        self.response = None            # the response's header list
        self.ended = False              # END_STREAM or the connection's end
        self.reset = None               # RST_STREAM error code
        self.goaway = None              # (last stream id, error code) of the last GOAWAY
        self.pings = 0
        self._header_block = None       # (stream, flags of HEADERS, block) while CONTINUATIONs come

    # --- what WSClient uses ------------------------------------------------

    def settimeout(self, timeout):
        self.timeout = timeout

    def recv(self, n):
        """Up to N bytes of the stream; b"" at its end; ConnectionResetError
        after an RST_STREAM; socket.timeout as a socket would."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while not self.inbuf:
            if self.reset is not None:
                raise ConnectionResetError("RST_STREAM error code %d" % self.reset)
            if self.ended:
                return b""
            self._read_frame(deadline)
        data = bytes(self.inbuf[:n])
        del self.inbuf[:n]
        self._give_back(len(data))
        return data

    def sendall(self, data):
        """DATA frames within the server's windows and frame size."""
        data = memoryview(bytes(data))
        while data:
            if self.reset is not None or self.ended:
                raise BrokenPipeError("the stream has ended")
            n = min(len(data), self.send_window, self.stream_send_window, self.max_frame)
            if n <= 0:
                deadline = None if self.timeout is None else time.monotonic() + self.timeout
                self._read_frame(deadline)     # waiting for WINDOW_UPDATE
                continue
            self.sock.sendall(frame_encode(DATA, 0, self.STREAM, data[:n].tobytes()))
            self.send_window -= n
            self.stream_send_window -= n
            data = data[n:]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def fileno(self):
        return self.sock.fileno()

    # --- HTTP/2 ------------------------------------------------------------

    def _give_back(self, n):
        """Returns N read bytes to both windows, in batches."""
        self.unacked += n
        if self.unacked >= DEFAULT_WINDOW // 4:
            inc = struct.pack("!I", self.unacked)
            self.sock.sendall(frame_encode(WINDOW_UPDATE, 0, 0, inc) + frame_encode(WINDOW_UPDATE, 0, self.STREAM, inc))
            self.unacked = 0

    def _fill(self, deadline):
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out waiting for an HTTP/2 frame")
            self.sock.settimeout(left)
        else:
            self.sock.settimeout(None)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            chunk = b""
        if not chunk:
            self.ended = True
            if len(self.rbuf):
                raise H2Error("connection ended inside a frame")
        self.rbuf += chunk

    def _read_frame(self, deadline):
        """Reads and handles one frame (or notes the connection's end)."""
        while len(self.rbuf) < 9 or len(self.rbuf) < 9 + int.from_bytes(self.rbuf[:3], "big"):
            self._fill(deadline)
            if self.ended:
                return
        n = int.from_bytes(self.rbuf[:3], "big")
        ftype, flags = self.rbuf[3], self.rbuf[4]
        stream = struct.unpack("!I", self.rbuf[5:9])[0] & 0x7FFFFFFF
        payload = bytes(self.rbuf[9:9 + n])
        del self.rbuf[:9 + n]
        self._handle(ftype, flags, stream, payload)

    def _handle(self, ftype, flags, stream, payload):
        if self._header_block is not None and ftype != CONTINUATION:
            raise H2Error("frame type %d inside a header block" % ftype)
        if ftype == DATA:
            self._on_data(flags, stream, payload)
        elif ftype in (HEADERS, CONTINUATION):
            self._on_headers(ftype, flags, stream, payload)
        elif ftype == RST_STREAM and stream == self.STREAM:
            self.reset = struct.unpack("!I", payload)[0]
        elif ftype == SETTINGS and not flags & ACK:
            self._on_settings(payload)
        elif ftype == PING and not flags & ACK:
            self.pings += 1
            self.sock.sendall(frame_encode(PING, ACK, 0, payload))
        elif ftype == GOAWAY:
            last, code = struct.unpack("!II", payload[:8])
            self.goaway = (last & 0x7FFFFFFF, code)
            if self.goaway[0] < self.STREAM:
                self.reset = code       # our stream was never taken
        elif ftype == WINDOW_UPDATE:
            inc = struct.unpack("!I", payload)[0] & 0x7FFFFFFF
            if stream == 0:
                self.send_window += inc
            elif stream == self.STREAM:
                self.stream_send_window += inc
        elif ftype == PUSH_PROMISE:
            raise H2Error("PUSH_PROMISE although SETTINGS_ENABLE_PUSH is 0")
        # PRIORITY, SETTINGS acknowledgements, frames of other streams and
        # unknown types: nothing to do (RFC 9113 5.5).

    def _on_data(self, flags, stream, payload):
        if stream != self.STREAM:
            raise H2Error("DATA on stream %d" % stream)
        data = _strip_padding(flags, payload)
        self.inbuf += data
        # Padding counts against the window too; it is never handed out.
        self._give_back(len(payload) - len(data))
        if flags & END_STREAM:
            self.ended = True

    def _on_headers(self, ftype, flags, stream, payload):
        if ftype == HEADERS:
            payload = _strip_padding(flags, payload)
            if flags & PRIORITY_FLAG:
                payload = payload[5:]
            self._header_block = (stream, flags, payload)
        elif self._header_block is None or self._header_block[0] != stream:
            raise H2Error("CONTINUATION without its HEADERS")
        else:
            self._header_block = (stream, self._header_block[1], self._header_block[2] + payload)
        if not flags & END_HEADERS:
            return
        stream, first_flags, block = self._header_block
        self._header_block = None
        headers = self.hpack.decode(block)      # always, to keep the table in step
        if stream != self.STREAM:
            return
        if self.response is None:
            self.response = headers
        if first_flags & END_STREAM:
            self.ended = True

    def _on_settings(self, payload):
        if len(payload) % 6:
            raise H2Error("SETTINGS of %d bytes" % len(payload))
        for i in range(0, len(payload), 6):
            key, value = struct.unpack("!HI", payload[i:i + 6])
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                self.stream_send_window += value - self.peer_settings.get(key, DEFAULT_WINDOW)
            elif key == SETTINGS_MAX_FRAME_SIZE:
                self.max_frame = value
            self.peer_settings[key] = value
        self.settings_received = True
        self.sock.sendall(frame_encode(SETTINGS, ACK, 0))

    def wait(self, predicate, deadline):
        """Handles frames until PREDICATE() is true."""
        while not predicate():
            if self.ended or self.reset is not None:
                raise H2Error("connection or stream ended while waiting (reset=%r goaway=%r)"
                              % (self.reset, self.goaway))
            self._read_frame(deadline)


def connect(port, path, headers=None, timeout=10.0, host="127.0.0.1"):
    """A WebSocket to PATH over HTTP/2 (TLS on PORT, any certificate
    accepted): returns a WSClient after the server's 200; raises
    AssertionError with the status and body when it answers otherwise.
    HEADERS (a dict) are added to the request, names in lower case."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise
    h2 = H2Stream(tls)
    try:
        return _open(h2, port, path, headers, timeout, host)
    except BaseException:
        h2.close()
        raise


def _open(h2, port, path, headers, timeout, host):
    if h2.sock.selected_alpn_protocol() != "h2":
        raise H2Error("the server did not choose h2 (ALPN %r)" % h2.sock.selected_alpn_protocol())
    deadline = time.monotonic() + timeout
    h2.sock.sendall(PREFACE + frame_encode(SETTINGS, 0, 0, struct.pack("!HI", SETTINGS_ENABLE_PUSH, 0)))
    h2.wait(lambda: h2.settings_received, deadline)
    if h2.peer_settings.get(SETTINGS_ENABLE_CONNECT_PROTOCOL) != 1:
        raise H2Error("the server does not offer extended CONNECT (RFC 8441): %r" % h2.peer_settings)
    fields = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"), (":path", path),
              (":authority", "%s:%d" % (host, port)), ("sec-websocket-version", "13")]
    fields += [(k.lower(), v) for k, v in (headers or {}).items()]
    block = b"".join(hpack_literal(k, v) for k, v in fields)
    # One HEADERS frame: a request's few fields are far below 16 KiB.
    h2.sock.sendall(frame_encode(HEADERS, END_HEADERS, H2Stream.STREAM, block))
    h2.wait(lambda: h2.response is not None, deadline)
    status = int(dict(h2.response).get(":status", "0"))
    header_map = {}
    for k, v in h2.response:
        if not k.startswith(":"):
            header_map[k] = header_map[k] + ", " + v if k in header_map else v
    if status != 200:
        body = b""
        h2.settimeout(max(0.1, deadline - time.monotonic()))
        while True:
            chunk = h2.recv(65536)
            if not chunk:
                break
            body += chunk
        raise AssertionError("extended CONNECT refused: %d %r %r" % (status, header_map, body[:300]))
    response = HTTPResponse(status, "", header_map, b"", [kv for kv in h2.response if not kv[0].startswith(":")])
    return WSClient(h2, b"", response, timeout)
