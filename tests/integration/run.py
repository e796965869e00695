"""run.py - runs every tests/integration/test_*.py and prints one result line
per test and "N passed, M failed" at the end."""

import argparse
import os
import sys
import time
import unittest


class Result(unittest.TextTestResult):
    def startTest(self, test):
        self._started = time.monotonic()
        super().startTest(test)

    def _line(self, word, test):
        # A class's setUpClass failing reports before any test started.
        started = getattr(self, "_started", time.monotonic())
        self.stream.write("%-4s %s (%.2fs)\n" % (word, test.id(), time.monotonic() - started))
        self.stream.flush()

    passed = 0

    def addSuccess(self, test):
        unittest.TestResult.addSuccess(self, test)
        self.passed += 1
        self._line("ok", test)

    def addFailure(self, test, err):
        unittest.TestResult.addFailure(self, test, err)
        self._line("FAIL", test)

    def addError(self, test, err):
        unittest.TestResult.addError(self, test, err)
        self._line("ERR", test)

    def addSkip(self, test, reason):
        unittest.TestResult.addSkip(self, test, reason)
        self._line("skip", test)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parleyd", required=True)
    ap.add_argument("pattern", nargs="?", default="test_*.py")
    args = ap.parse_args()
    os.environ["PARLEYD"] = os.path.abspath(args.parleyd)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)

    suite = unittest.defaultTestLoader.discover(here, pattern=args.pattern)
    runner = unittest.TextTestRunner(stream=sys.stdout, resultclass=Result, verbosity=0)
    result = runner.run(suite)
    bad = len(result.failures) + len(result.errors)
    print("%d passed, %d failed" % (result.passed, bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
