"""Prints the triage figures on the repo's labelled corpora: the main corpus the rules
are written against, and the held-out set written without seeing the rules.

    .venv/bin/python bench/triage.py [--misses]

For each set: safety concerns logged as safer custody, threats to life marked
immediate, families with a safety concern who would get an automatic reply, genuine
English enquiries classed right (not safer custody, right category), enquiries in other
languages held for staff (as they must be), and the confusion table of expected against
given urgency.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailbot.triage import load_rules  # noqa: E402
from tests.triage_corpus import URGENCY_ORDER, load_cases, score  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--misses", action="store_true", help="list every case got wrong")
    parser.add_argument("--set", action="append", help="main, heldout (default both)")
    args = parser.parse_args()
    rules = load_rules()
    groups = []
    for name in args.set or ("main", "heldout"):
        cases = load_cases(name)
        groups.append((name, cases))
        files = sorted({c["file"] for c in cases})
        if name == "heldout" and len(files) > 1:
            groups += [(f"{name}/{f}", [c for c in cases if c["file"] == f]) for f in files]
    for name, cases in groups:
        started = time.perf_counter()
        figures = score(cases, rules)
        elapsed = time.perf_counter() - started
        print(f"== {name}: {len(cases)} cases ({elapsed * 1000 / len(cases):.1f} ms a case)")
        print(f"  safety concerns logged as safer custody  {figures.safety_logged}/"
              f"{figures.safety} ({figures.recall:.1%})")
        print(f"  threats to life marked immediate         {figures.immediate_alerted}/"
              f"{figures.immediate} ({figures.immediate_recall:.1%})")
        print(f"  safety concerns auto-replied             {figures.safety_auto_replied}")
        print(f"  English enquiries classed right          {figures.enquiries_right}/"
              f"{figures.enquiries} ({figures.enquiry_accuracy:.1%}); answered automatically"
              f" {figures.enquiries_auto}")
        print(f"  other-language enquiries held for staff  {figures.foreign_enquiries_held}/"
              f"{figures.foreign_enquiries}")
        print("  expected \\ given   " + "".join(f"{u[:9]:>10}" for u in URGENCY_ORDER))
        for expected in URGENCY_ORDER:
            row = [figures.confusion[(expected, given)] for given in URGENCY_ORDER]
            print(f"  {expected[:17]:<18}" + "".join(f"{n:>10}" for n in row))
        if args.misses:
            for why, case, result in figures.misses:
                expected = case.get("urgency") or case.get("category")
                print(f"  - {why}: [{case['file']}:{case.get('language', 'en')}] "
                      f"{case['text'][:150]!r}\n      expected {expected}"
                      f" -> {result.urgency} {result.categories[:2]} {list(result.reasons)[:2]}")


if __name__ == "__main__":
    main()
