#!/usr/bin/env python3
"""haproxy_conf.py - the shipped etc/haproxy.cfg, made to run on one machine.

The tests and "make try-cluster" run HAProxy with the configuration users
get, changed only where a machine differs: listening addresses, the
certificate, the parleyd instances, where the log goes, and what a process
that is not root cannot do (chroot, user).  Every change must find exactly
what it expects in the shipped file, so that the file cannot drift away
from what is tested.

As a command:
    haproxy_conf.py SHIPPED OUT --https ADDR --http ADDR --stats ADDR
                    --cert PEM --socket PATH --server NAME=ADDR [...] [--maxconn N]
"""

import argparse
import re
import sys


def _sub(text, pattern, repl, count):
    new, n = re.subn(pattern, repl, text, flags=re.M)
    if n != count:
        raise ValueError("etc/haproxy.cfg changed: %r matched %d times, expected %d" % (pattern, n, count))
    return new


def derive(text, https, http, stats, cert, socket, servers, maxconn=4000, log="stdout format raw local0"):
    """TEXT (the shipped file) with SERVERS ([(name, "addr:port")]) behind
    HTTPS and HTTP (addresses), HAProxy's metrics on STATS, the certificate
    CERT, the runtime API on SOCKET and the log to LOG."""
    text = _sub(text, r"^    log /dev/log local0$", "    log " + log, 1)
    text = _sub(text, r"^    (chroot|user|group) .*\n", "", 3)
    text = _sub(text, r"(stats socket )/run/haproxy/admin\.sock( mode )660", r"\g<1>%s\g<2>600" % socket, 1)
    # HAProxy needs about 2 x maxconn descriptors and cannot raise its own
    # limit above the hard one (20,000 on the test machines).
    text = _sub(text, r"^    maxconn \d+$", "    maxconn %d" % maxconn, 1)
    text = _sub(text, r"^    bind :443 ssl crt /etc/haproxy/parley\.pem ", "    bind %s ssl crt %s " % (https, cert), 1)
    text = _sub(text, r"^    bind :80$", "    bind " + http, 1)
    text = _sub(text, r"^    bind 127\.0\.0\.1:8404$", "    bind " + stats, 1)
    rooms = "".join("    server %s %s\n" % (name, addr) for name, addr in servers)
    others = "".join("    server %s %s track be_rooms/%s\n" % (name, addr, name) for name, addr in servers)
    text = _sub(text, r"^(    server parley\d 10\.0\.0\.\d+:8080\n){3}(?=\nbackend be_parley)", rooms, 1)
    text = _sub(text, r"^(    server parley\d 10\.0\.0\.\d+:8080 track be_rooms/parley\d\n){3}", others, 1)
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shipped")
    ap.add_argument("out")
    for opt in ("--https", "--http", "--stats", "--cert", "--socket"):
        ap.add_argument(opt, required=True)
    ap.add_argument("--server", action="append", required=True, help="NAME=ADDR:PORT")
    ap.add_argument("--log", default="stdout format raw local0")
    ap.add_argument("--maxconn", type=int, default=4000)
    args = ap.parse_args()
    with open(args.shipped) as f:
        text = f.read()
    servers = [tuple(s.split("=", 1)) for s in args.server]
    try:
        text = derive(text, args.https, args.http, args.stats, args.cert, args.socket, servers,
                      maxconn=args.maxconn, log=args.log)
    except ValueError as e:
        sys.exit("haproxy_conf.py: %s" % e)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
