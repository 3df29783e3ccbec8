"""Matching: finds where each rule's phrases occur in a text, then applies negation
("not suicidal"), lowering ("tried to hang himself years ago") and combinations
("tonight" + suicidal talk), and quotes the family's words for each reason."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from mailbot.triage.categories import ENQUIRY, IDIOM, RANK, SAFETY_LEVELS
from mailbot.triage.reading import CLAUSE, SENTENCE, Words
from mailbot.triage.rules import Combination, Lower, Negation, Signal, TriageRules

EXCERPT_CHARS = 70


@dataclass
class Match:
    """Where one rule fired: word positions, the level it counts at, and why."""

    signal: Signal
    start: int  # first word position
    end: int  # last word position (inclusive)
    level: str
    negated_by: int | None = None
    note: str = ""


def spans(pattern: re.Pattern[str], string: str, starts: list[int]) -> Iterable[tuple[int, int]]:
    """Word spans (first, last) of the pattern's matches anywhere in the string; a
    pattern from `PhraseCompiler.pattern` reports its (overlapping) matches in group 1."""
    for m in pattern.finditer(string):
        span = word_span(*(m.span(1) if m.re.groups else m.span()), string, starts)
        if span is not None:
            yield span


def word_span(a: int, b: int, string: str, starts: list[int]) -> tuple[int, int] | None:
    """The word positions (first, last) of characters a to b of a joined string."""
    while a < b and string[a] == " ":
        a += 1
    if b <= a:
        return None
    first = bisect_right(starts, a) - 1
    last = bisect_right(starts, b - 1) - 1
    if string[b - 1] == " ":
        last = bisect_right(starts, b - 2) - 1
    return max(first, 0), max(last, first, 0)


def find(words: Words, rules: TriageRules) -> tuple[list[Match], list[tuple[int, int]]]:
    """Every rule's matches, figures of speech taking their words from safety rules; and
    the word spans a safety rule found and its own `unless` set aside ("the screen's
    cracked" is not crack cocaine): words explained, as a figure of speech's are."""
    found: list[Match] = []
    set_aside: list[tuple[int, int]] = []
    present = _present(words)
    for signal in rules.signals:
        hits, blocked = _hits(signal, words, present)
        found.extend(Match(signal, a, b, signal.level) for a, b in hits)
        if signal.level in SAFETY_LEVELS:
            set_aside.extend(blocked)
    idioms = [m for m in found if m.level == IDIOM]
    if idioms:
        found = [m for m in found if m.level in (IDIOM, ENQUIRY) or not any(
            i.start <= m.end and m.start <= i.end for i in idioms)]
    found.sort(key=lambda m: (m.start, -m.end))
    return found, set_aside


def _present(words: Words) -> set[str]:
    """What a text holds, in the terms of `PhraseSet`: its stems, its words as written,
    the beginnings of those (for `word*`), and "#" if it holds a number."""
    present = {f"s:{s}" for s in words.stems} | {f"p:{p}" for p in words.plains}
    present.update(f"x:{p[:n]}" for p in words.plains for n in range(3, len(p) + 1))
    if any(p.isdigit() for p in words.plains):
        present.add("#")
    return present


def _hits(
    signal: Signal, words: Words, present: set[str]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The word spans where the signal's phrases match: those kept, and those its
    `unless` phrases cancel."""
    hits: list[tuple[int, int]] = []
    if signal.phrases is not None:
        joined, starts = words.joined, words.joined_starts
        for a, b in signal.phrases.starts(joined, present):
            span = word_span(a, b, joined, starts)
            if span is not None:
                hits.append(span)
    if signal.regex is not None:
        hits.extend(spans(signal.regex, words.plain, words.plain_starts))
    hits = list(dict.fromkeys(hits))
    if not hits or signal.unless is None:
        return hits, []
    blocking = list(spans(signal.unless, words.joined, words.joined_starts))
    blocked = [h for h in hits if any(a <= h[1] and h[0] <= b for a, b in blocking)]
    return [h for h in hits if h not in blocked], blocked


def negate(matches: list[Match], words: Words, negation: Negation) -> None:
    negated_positions: set[int] = set()
    undo_starts: list[int] = []
    if negation.undo is not None and matches:
        undo_starts = [a for a, _ in spans(negation.undo, words.joined, words.joined_starts)]
    for match in matches:
        if not match.signal.negatable:
            continue
        j, steps, after_coordinator = match.start - 1, 0, False
        while j >= 0 and steps <= negation.window:
            s = words.stems[j]
            if s in negation.negators:
                if not _conditional(words, j, negation) and not any(
                    match.end < a <= match.end + negation.undo_within
                    and words.sentence[a] == words.sentence[match.end]
                    for a in undo_starts
                ):
                    match.negated_by = j
                    negated_positions.update(range(match.start, match.end + 1))
                break
            if s in (SENTENCE, CLAUSE) or s in negation.breakers:
                break
            if s in negation.coordinators:
                after_coordinator = True
            elif after_coordinator and j in negated_positions:
                pass  # "not suicidal or self harming": the "not" reaches both
            elif s in negation.linking:
                after_coordinator = False
                steps += 1
            else:
                break
            j -= 1


def _conditional(words: Words, negator: int, negation: Negation) -> bool:
    """A negator just after "if" or "unless" ("if he doesnt pay up") denies nothing."""
    before = words.stems[max(0, negator - 2):negator]
    return any(s in negation.conditionals for s in before)


def excerpt(words: Words, start: int, end: int) -> str:
    text = words.text[words.spans[start][0]:words.spans[end][1]]
    # No double quotes inside: the excerpt stays one quoted span that alerts can strip.
    text = " ".join(text.split()).replace('"', "'")
    if len(text) > EXCERPT_CHARS:
        text = text[:EXCERPT_CHARS - 3].rstrip() + "..."
    return f'"{text}"'


def lower(matches: list[Match], words: Words, lowers: tuple[Lower, ...]) -> None:
    live = [m for m in matches if m.negated_by is None]
    for rule in lowers:
        for match in live:
            if not (match.signal.tags & rule.tags) or RANK[match.level] <= RANK[rule.level]:
                continue
            sentence = words.sentence[match.start]
            near = [m for m in live if m.signal.tags & rule.near
                    and words.sentence[m.start] == sentence]
            unless = [m for m in live if m.signal.tags & rule.unless_near
                      and words.sentence[m.start] == sentence]
            if near and not unless:
                match.level = rule.level
                match.note = (f"{rule.level}: told as history, "
                              f"{excerpt(words, near[0].start, near[0].end)}, rule {rule.name}")


def combine(
    matches: list[Match], words: Words, rules: TriageRules
) -> list[tuple[Combination, str]]:
    live = [m for m in matches if m.negated_by is None]
    fired = []
    for rule in rules.combinations:
        by_tag = [[m for m in live if tag in m.signal.tags] for tag in rule.when]
        if not all(by_tag):
            continue
        for first in by_tag[0]:
            partners = []
            for group in by_tag[1:]:
                # Two signs, not one word read twice ("blade" as threat and as weapon).
                near = [m for m in group if not (m.start <= first.end and first.start <= m.end)
                        and _close(first, m, words, rule)]
                if not near:
                    break
                partners.append(near[0])
            else:
                quoted = " + ".join(excerpt(words, m.start, m.end)
                                    for m in sorted([first, *partners], key=lambda m: m.start))
                label = rule.category or rule.level
                fired.append((rule, f"{label}: {quoted} ({rule.level}, rule {rule.name})"))
                break
    return fired


def _close(a: Match, b: Match, words: Words, rule: Combination) -> bool:
    if rule.same_sentence and words.sentence[a.start] != words.sentence[b.start]:
        return False
    if rule.within == 0:
        return True
    return max(0, b.start - a.end, a.start - b.end) <= rule.within
