#!/usr/bin/python3
"""Counts from a test report, for tests/run.sh: prints "passed failed
skipped" on one line.

  report.py junit FILE   a pytest --junitxml report
  report.py tap FILE     TAP output (of one or more test binaries): "ok",
                         "not ok", the SKIP and TODO directives, and
                         "Bail out!" as a failure
"""

import re
import sys
import xml.etree.ElementTree as ET


def junit(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    passed = failed = skipped = 0
    for s in suites:
        tests = int(s.get("tests", 0))
        bad = int(s.get("failures", 0)) + int(s.get("errors", 0))
        skip = int(s.get("skipped", 0))
        passed += tests - bad - skip
        failed += bad
        skipped += skip
    return passed, failed, skipped


TAP_RESULT = re.compile(r"^(not )?ok\b[^#]*(#\s*(SKIP|TODO)\b)?", re.I)


def tap(path):
    passed = failed = skipped = 0
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("Bail out!"):
                failed += 1
                continue
            m = TAP_RESULT.match(line)
            if not m:
                continue
            directive = (m.group(3) or "").upper()
            if directive == "SKIP":
                skipped += 1
            elif directive == "TODO" or not m.group(1):
                passed += 1
            else:
                failed += 1
    return passed, failed, skipped


def main():
    kind, path = sys.argv[1:3]
    print("%d %d %d" % {"junit": junit, "tap": tap}[kind](path))


if __name__ == "__main__":
    main()
