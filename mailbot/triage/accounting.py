"""Accounting for a text: decides whether every sentence of a contact is recognised
routine-enquiry content, which is the positive evidence an automatic reply needs.

"No safety signal was found" is not evidence that a text is routine: a family may write
about a danger in words no rule knows. So a sentence is *accounted for* only when each of
its words is part of a recognised enquiry phrase, a word of the routine vocabulary
(`[accounting] routine_words` in the rules: everyday words of questions about visits,
money, property...; words of feeling, ending, leaving or harm are deliberately absent), a
number, or a name the form gave. Anything else is *unaccounted*: shown to staff, and it
rules out an automatic reply. An unaccounted sentence that names no enquiry at all is a
possible concern in words mailbot does not know, and goes to a person as safer custody.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mailbot.triage.categories import ENQUIRY, SAFETY_LEVELS
from mailbot.triage.matching import Match
from mailbot.triage.reading import BOUNDARIES, Words
from mailbot.triage.rules import Accounting

_QUOTE_CHARS = 160


@dataclass(frozen=True)
class Account:
    """What accounting found: the sentences it could not account for, and which of them
    name no enquiry at all (so may be a concern in words no rule knows)."""

    unaccounted: tuple[str, ...]
    unknown_topic: tuple[str, ...]
    enquiry_found: bool
    word_count: int

    @property
    def complete(self) -> bool:
        return self.enquiry_found and not self.unaccounted


def account(
    words: Words, matches: Iterable[Match], accounting: Accounting, names: Iterable[str] = ()
) -> Account:
    live = [m for m in matches if m.negated_by is None]
    enquiry_positions: set[int] = set()
    safety_sentences: set[int] = set()
    for m in live:
        if m.level == ENQUIRY:
            enquiry_positions.update(range(m.start, m.end + 1))
        elif m.level in SAFETY_LEVELS:
            safety_sentences.add(words.sentence[m.start])
    known_names = {n.lower() for name in names for n in name.replace("-", " ").split()}
    unaccounted: list[str] = []
    unknown_topic: list[str] = []
    count = 0
    for first, last in words.sentences():
        positions = [p for p in range(first, last + 1) if words.stems[p] not in BOUNDARIES]
        count += len(positions)
        has_enquiry = any(p in enquiry_positions for p in positions)
        if words.sentence[first] in safety_sentences:
            continue  # a safety sentence is already a person's to read, with its reason
        strange = [
            p for p in positions
            if p not in enquiry_positions
            and words.stems[p] not in accounting.routine_words
            and not words.plains[p].isdigit()
            and words.plains[p] not in known_names
        ]
        if strange:
            quoted = _quote(words, first, last)
            unaccounted.append(quoted)
            if not has_enquiry:
                unknown_topic.append(quoted)
    return Account(tuple(unaccounted), tuple(unknown_topic), bool(enquiry_positions), count)


def _quote(words: Words, first: int, last: int) -> str:
    text = " ".join(words.quote(first, last).split()).replace('"', "'")
    if len(text) > _QUOTE_CHARS:
        text = text[:_QUOTE_CHARS - 3].rstrip() + "..."
    return text
