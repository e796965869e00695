"""agent_latency.py PORT TOKEN [N] - time to the first agent chunk through
parleyd: N sequential GET /api/chat/stream requests on fresh connections,
from sending the request to reading the first `event: ai_chunk`.  Run it
against parleyd with agent_delay = 0 to see parley's own overhead."""

import socket
import statistics
import sys
import time


def first_chunk_us(port, token):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = ("GET /api/chat/stream?query=hello+there&token=%s HTTP/1.1\r\nHost: b\r\n\r\n" % token).encode()
    t0 = time.perf_counter()
    s.sendall(req)
    data = b""
    while b"event: ai_chunk" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("stream ended before a chunk: %r" % data[:200])
        data += chunk
    t1 = time.perf_counter()
    s.close()
    return (t1 - t0) * 1e6


def main():
    port, token = int(sys.argv[1]), sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    for _ in range(50):
        first_chunk_us(port, token)                 # warm up
    samples = sorted(first_chunk_us(port, token) for _ in range(n))
    print("agent first chunk: %d asks: p50 %.0f us, p99 %.0f us, max %.0f us"
          % (n, statistics.median(samples), samples[int(n * 0.99) - 1], samples[-1]))


if __name__ == "__main__":
    main()
