"""The parleyd command line and configuration errors, run on the real binary."""

import os
import re
import socket
import tempfile
import unittest

from harness import Env, run_parleyd


class CommandLine(unittest.TestCase):
    def setUp(self):
        self.env = Env()
        self.addCleanup(self.env.close)

    def conf(self, text):
        path = os.path.join(self.env.tmpdir, "parley.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def assert_one_line_exit_2(self, result, pattern):
        self.assertEqual(result.returncode, 2, result.stderr)
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertRegex(lines[0], pattern)

    def test_version(self):
        r = run_parleyd(["--version"])
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^parleyd \d+\.\d+\.\d+\n$")

    def test_help(self):
        r = run_parleyd(["--help"])
        self.assertEqual(r.returncode, 0)
        for flag in ("-c FILE", "--listen", "--workers", "--redis", "--log-level",
                     "--check-config", "--version", "--help"):
            self.assertIn(flag, r.stdout)

    def test_unknown_flag(self):
        self.assert_one_line_exit_2(run_parleyd(["--wrokers", "2"]), r"^--wrokers: unknown option")

    def test_bad_flag_value(self):
        self.assert_one_line_exit_2(run_parleyd(["--workers", "0", "--check-config"]),
                                    r"^--workers: invalid value '0' for 'workers'")

    def test_check_config_ok(self):
        path = self.conf("listen = 127.0.0.1:0\nworkers = 2\n")
        r = run_parleyd(["--check-config", "-c", path])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("valid", r.stdout)

    def test_shipped_config_is_valid(self):
        shipped = os.path.join(os.path.dirname(__file__), "..", "..", "etc", "parley.conf")
        r = run_parleyd(["--check-config", "-c", shipped])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_unknown_key_names_file_and_line(self):
        path = self.conf("listen = 127.0.0.1:0\n# comment\n\nwrokers = 2\n")
        self.assert_one_line_exit_2(run_parleyd(["--check-config", "-c", path]),
                                    r"^%s:4: unknown key 'wrokers'$" % re.escape(path))

    def test_bad_value_names_line(self):
        path = self.conf("workers = many\n")
        self.assert_one_line_exit_2(run_parleyd(["-c", path]),
                                    r"^%s:1: invalid value 'many' for 'workers'" % re.escape(path))

    def test_missing_file(self):
        self.assert_one_line_exit_2(run_parleyd(["-c", "/nonexistent/parley.conf"]),
                                    r"^/nonexistent/parley.conf: cannot open configuration file")

    def test_unresolvable_address(self):
        path = self.conf("workers = 1\nlisten = no-such-host.invalid:8080\n")
        self.assert_one_line_exit_2(run_parleyd(["-c", path]),
                                    r"^%s:2: cannot resolve 'no-such-host.invalid'" % re.escape(path))

    def _holder(self, reuseport):
        s = socket.socket()
        if reuseport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        self.addCleanup(s.close)
        return s.getsockname()[1]

    def test_port_in_use(self):
        port = self._holder(reuseport=False)
        path = self.conf("workers = 1\nlisten = 127.0.0.1:%d\n" % port)
        self.assert_one_line_exit_2(run_parleyd(["-c", path]),
                                    r"^%s:2: cannot listen on 127.0.0.1:%d: Address already in use$"
                                    % (re.escape(path), port))

    def test_port_in_use_by_reuseport_holder(self):
        # SO_REUSEPORT must not let parleyd share a port with someone else.
        port = self._holder(reuseport=True)
        path = self.conf("workers = 1\n")
        self.assert_one_line_exit_2(run_parleyd(["-c", path, "--listen", "127.0.0.1:%d" % port]),
                                    r"^--listen: cannot listen on 127.0.0.1:%d: Address already in use$" % port)

    def test_unwritable_log_file(self):
        path = self.conf("listen = 127.0.0.1:0\nlog_file = /nonexistent/dir/parley.log\n")
        self.assert_one_line_exit_2(run_parleyd(["-c", path]),
                                    r"^%s:2: cannot open log file" % re.escape(path))

    def test_flags_override_file(self):
        # The file says 3 workers at warn; the flags say 1 at info.  The
        # "ready" line is logged at info, so start() proves --log-level won.
        p = self.env.parleyd({"workers": "3", "log_level": "warn"},
                             args=["--workers", "1", "--log-level", "info"])
        status, _, health = p.get_json("/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(health["workers"], 1)
        self.assertEqual(len(p.workers()), 1)


if __name__ == "__main__":
    unittest.main()
