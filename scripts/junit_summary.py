#!/usr/bin/env python3
"""Summarise the JUnit files of ctest (--output-junit) and pytest (--junitxml) for
scripts/test.sh: one line per stage,
then the totals as the last line, "N passed, N failed, N skipped".

    scripts/junit_summary.py STAGE=FILE|STAGE=!REASON ...

A stage given as STAGE=!REASON did not produce a JUnit file (it failed to build, say): it is
printed with the reason and counts as one failure, so the totals never look clean after one.
Exit code: 0 when nothing failed, 1 otherwise, 2 for bad arguments.
"""

import sys
import xml.etree.ElementTree as ET


def counts(path):
    """(run, passed, failed, skipped) from a JUnit file of ctest or pytest."""
    root = ET.parse(path).getroot()
    cases = root.iter("testcase")
    passed = failed = skipped = 0
    for case in cases:
        status = case.get("status")
        if status is None:  # pytest's JUnit: the outcome is a child element
            status = ("fail" if case.find("failure") is not None or case.find("error") is not None
                      else "notrun" if case.find("skipped") is not None else "run")
        if status == "run":
            passed += 1
        elif status == "fail":
            failed += 1
        else:  # "notrun" (skipped by SKIP_RETURN_CODE or SKIP_REGULAR_EXPRESSION) or "disabled"
            skipped += 1
    return passed + failed + skipped, passed, failed, skipped


def main(argv):
    if not argv or any("=" not in a for a in argv):
        print(__doc__, file=sys.stderr)
        return 2
    totals = [0, 0, 0]
    width = max(len(a.split("=", 1)[0]) for a in argv)
    print("summary:")
    for arg in argv:
        stage, value = arg.split("=", 1)
        if value.startswith("!"):
            print(f"  {stage:<{width}}  did not run its tests: {value[1:]}")
            totals[1] += 1
            continue
        try:
            run, passed, failed, skipped = counts(value)
        except (OSError, ET.ParseError) as e:
            print(f"  {stage:<{width}}  no readable test report {value} ({e})")
            totals[1] += 1
            continue
        print(f"  {stage:<{width}}  {run:4d} run, {passed:4d} passed, {failed:3d} failed, "
              f"{skipped:3d} skipped")
        totals[0] += passed
        totals[1] += failed
        totals[2] += skipped
    print(f"{totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    return 0 if totals[1] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
