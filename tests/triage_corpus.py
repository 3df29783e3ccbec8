"""The labelled triage corpora under tests/data/triage/ and the figures they are judged
by: shared by tests/test_triage_corpus.py (which asserts) and bench/triage.py (which
prints). `main/` is the corpus the rules are written against; `heldout/` was written by
people who never saw the rules, and is a check, never tuned to."""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailbot.triage import TriageResult, TriageRules, triage

DATA = Path(__file__).resolve().parent / "data" / "triage"
URGENCY_ORDER = ("immediate", "urgent", "routine", "not_safer_custody")


def load_cases(name: str) -> list[dict[str, Any]]:
    """Every [[case]] of every file in tests/data/triage/<name>/, each tagged with its file."""
    cases = []
    for path in sorted((DATA / name).glob("*.toml")):
        for case in tomllib.loads(path.read_text(encoding="utf-8"))["case"]:
            cases.append({**case, "file": path.name})
    return cases


def run(case: dict[str, Any], rules: TriageRules) -> TriageResult:
    return triage(case["text"], topic=case.get("topic", ""),
                  urgency_choice=case.get("urgency_choice", ""),
                  subject=case.get("subject", ""), rules=rules)


def expected_urgency(case: dict[str, Any]) -> str:
    return case.get("urgency", "not_safer_custody") if case["safety"] else "not_safer_custody"


def expected_category(case: dict[str, Any]) -> str:
    return case.get("category") or case["categories"][0]


def auto_replied(result: TriageResult) -> bool:
    """A verified short form whose triage says this gets the automatic signposting reply."""
    return not result.is_safer_custody and result.routine


def enquiry_category(result: TriageResult) -> str:
    from mailbot.triage import ENQUIRY_CATEGORIES

    return next((c for c in result.categories if c in ENQUIRY_CATEGORIES), "other")


@dataclass
class Figures:
    """The four figures the issue judges triage by, with the cases behind each miss."""

    safety: int = 0
    safety_logged: int = 0
    immediate: int = 0
    immediate_alerted: int = 0
    safety_auto_replied: int = 0
    enquiries: int = 0
    enquiries_right: int = 0
    enquiries_auto: int = 0
    # Not in English: never answered automatically, held for staff as safer custody.
    foreign_enquiries: int = 0
    foreign_enquiries_held: int = 0
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    misses: list[tuple[str, dict[str, Any], TriageResult]] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.safety_logged / self.safety if self.safety else 1.0

    @property
    def immediate_recall(self) -> float:
        return self.immediate_alerted / self.immediate if self.immediate else 1.0

    @property
    def enquiry_accuracy(self) -> float:
        return self.enquiries_right / self.enquiries if self.enquiries else 1.0


def score(cases: list[dict[str, Any]], rules: TriageRules) -> Figures:
    figures = Figures()
    for case in cases:
        result = run(case, rules)
        expected = expected_urgency(case)
        figures.confusion[(expected, result.urgency)] += 1
        if case["safety"]:
            figures.safety += 1
            if result.is_safer_custody:
                figures.safety_logged += 1
            else:
                figures.misses.append(("safety not logged", case, result))
            if auto_replied(result):
                figures.safety_auto_replied += 1
                figures.misses.append(("safety AUTO-REPLIED", case, result))
            if expected == "immediate":
                figures.immediate += 1
                if result.urgency == "immediate":
                    figures.immediate_alerted += 1
                else:
                    figures.misses.append(("threat to life not immediate", case, result))
        elif case.get("language", "en") != "en":
            figures.foreign_enquiries += 1
            if result.is_safer_custody and not auto_replied(result):
                figures.foreign_enquiries_held += 1
            else:
                figures.misses.append(("foreign enquiry not held for staff", case, result))
        else:
            figures.enquiries += 1
            category = enquiry_category(result)
            right = not result.is_safer_custody and category == expected_category(case)
            if right:
                figures.enquiries_right += 1
            else:
                figures.misses.append(("enquiry wrong", case, result))
            if auto_replied(result):
                figures.enquiries_auto += 1
    return figures
