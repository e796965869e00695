"""h11_verdict.py - h11's framing decision on request bytes, for the
differential test (test_http_differential.py).

The same input as tests/http_verdict.c on stdin: cases, each "<length>\\n"
and that many bytes.  For each case one line: "reject", or "accept END
BODY VERSION" (where the next request starts, the body in hex or "-", the
HTTP version), judged by h11 as if the client closed its side after the
bytes, so that a request still incomplete is refused.  Run it with an
interpreter that can import h11 (Debian: python3-h11)."""

import sys

import h11


def verdict(data):
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    conn.receive_data(b"")
    body = b""
    request = None
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                rest, _ = conn.trailing_data
                return "accept %d %s %s" % (len(data) - len(rest), body.hex() or "-",
                                            request.http_version.decode())
            else:
                return "reject"
    except h11.RemoteProtocolError:
        return "reject"


def main():
    stdin = sys.stdin.buffer
    out = []
    while True:
        line = stdin.readline()
        if not line:
            break
        out.append(verdict(stdin.read(int(line))))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
