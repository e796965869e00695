"""The systemd unit and the shipped configuration file."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import PARLEYD

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


class Packaging(unittest.TestCase):
    def unit_text(self):
        with open(os.path.join(TOP, "systemd", "parleyd.service.in")) as f:
            return f.read()

    def test_unit_directives(self):
        unit = self.unit_text()
        for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
                     "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                     "PrivateTmp=yes", "DynamicUser=yes", "User=parley"):
            self.assertIn("\n" + line + "\n", unit)
        nofile = int(re.search(r"^LimitNOFILE=(\d+)$", unit, re.M).group(1))
        self.assertGreaterEqual(nofile, 100000 + 1024)

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze not installed")
    def test_systemd_analyze_verify(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        unit = self.unit_text().replace("@sbindir@", os.path.dirname(PARLEYD)) \
                               .replace("@sysconfdir@", os.path.join(TOP, "etc"))
        path = os.path.join(tmp, "parleyd.service")
        with open(path, "w") as f:
            f.write(unit)
        r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("parleyd.service:", r.stderr)      # no warnings about our unit

    def test_every_key_documented_with_default(self):
        # Each key in etc/parley.conf appears as "#key = default", and the
        # commented file is exactly the built-in defaults.
        with open(os.path.join(TOP, "etc", "parley.conf")) as f:
            text = f.read()
        keys = re.findall(r"^#([a-z_]+) =", text, re.M)
        with open(os.path.join(TOP, "src", "conf.c")) as f:
            table = re.findall(r'^\s+\{ "([a-z_]+)",\s+CONF_', f.read(), re.M)
        self.assertEqual(sorted(keys), sorted(table))
        uncommented = re.sub(r"^#([a-z_]+ = )", r"\1", text, flags=re.M)
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        os.makedirs(os.path.join(tmp, "web"))
        uncommented = re.sub(r"^web_root = .*$", "web_root = " + os.path.join(tmp, "web"),
                             uncommented, flags=re.M)
        path = os.path.join(tmp, "parley.conf")
        with open(path, "w") as f:
            f.write(uncommented)
        r = subprocess.run([PARLEYD, "--check-config", "-c", path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
