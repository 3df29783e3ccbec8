"""Accounting for a text: decides whether every sentence of a contact is recognised
routine-enquiry content, which is the positive evidence an automatic reply needs.

"No safety signal was found" is not evidence that a text is routine: a family may write
about a danger in words no rule knows. So a sentence is *accounted for* only when each of
its words is part of a recognised enquiry phrase, a word of the routine vocabulary
(`[accounting] routine_words` in the rules: everyday words of questions about visits,
money, property...; words of feeling, ending, leaving or harm are deliberately absent), a
number, or a name (the form's, or a capitalised word inside a sentence). Anything else
is *unaccounted*: shown to staff, and it rules out an automatic reply.

An unaccounted sentence is also a possible concern in words mailbot does not know, and
goes to a person as safer custody, when it holds a *suspicious* word (one that a safety
rule uses, or of `[accounting] suspicious_words`) that no rule explained, or when it
names no enquiry and holds a word that is not everyday English (the commonest words of
wordfreq's English list, less the suspicious ones): slang, a misspelling, a medicine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mailbot.triage.categories import ENQUIRY, IDIOM, MARKER, SAFETY_LEVELS
from mailbot.triage.matching import Match
from mailbot.triage.reading import BOUNDARIES, Words, stem
from mailbot.triage.rules import Accounting

_QUOTE_CHARS = 160
_TITLES = frozenset({"mr", "mrs", "ms", "miss", "dr", "mx", "sir", "madam"})
# Numbers, dates, times, money, prisoner numbers (A1234BC) and payment or booking
# references of letters and two or more digits (8H2KD99, not a dose: 100mg) account for
# themselves; so does a weight (a new baby's "7lb 2oz"), never a dose ("mg" is left to
# the medicine rules).
_NUMBER = re.compile(r"[0-9]+(?:st|nd|rd|th|s|am|pm|p|k|m|ft|lb|lbs|oz|kg|kgs)?"
                     r"|[a-z][0-9]{4}[a-z]{2}"
                     r"|(?=[a-z]*[0-9][a-z]*[0-9])(?=[0-9]*[a-z]+[0-9])[a-z0-9]{5,12}")
# A prisoner number's letter and four digits, its two letters typed apart ("S4436 YY").
_PRISONER_NUMBER_HEAD = re.compile(r"[a-z][0-9]{4}")


@dataclass(frozen=True)
class Account:
    """What accounting found: the sentences it could not account for, and which of them
    name no enquiry at all (so may be a concern in words no rule knows)."""

    unaccounted: tuple[str, ...]
    unknown_topic: tuple[str, ...]
    off_topic: tuple[str, ...]  # unaccounted sentences that ask about no enquiry either
    unreadable: tuple[str, ...]  # unaccounted sentences without a single English word
    enquiry_found: bool
    # Some sentence naming an enquiry asks something (a question mark, "can", "how",
    # "please"): an enquiry is asked, not a routine noun in passing ("on the phone").
    enquiry_asked: bool
    word_count: int
    only_pleasantries: bool  # every sentence a greeting, thanks or sign-off
    english_share: float  # of the words, those in the English vocabularies

    @property
    def complete(self) -> bool:
        return self.enquiry_found and not self.unaccounted


def account(
    words: Words,
    matches: Iterable[Match],
    accounting: Accounting,
    names: Iterable[str] = (),
    negators: frozenset[str] = frozenset(),
    dismissed: Iterable[tuple[int, int]] = (),
) -> Account:
    live = [m for m in matches if m.negated_by is None]
    enquiry_positions: set[int] = set()
    explained: set[int] = set()  # figures of speech and denials: not routine, not alarming
    safety_sentences: set[int] = set()
    doubtful: set[int] = set()  # words of a doubtful marker: never routine
    for m in live:
        if m.level == ENQUIRY:
            enquiry_positions.update(range(m.start, m.end + 1))
        elif m.level == IDIOM:
            explained.update(range(m.start, m.end + 1))
        elif m.level in SAFETY_LEVELS:
            safety_sentences.add(words.sentence[m.start])
        elif m.level == MARKER and m.signal.tags & accounting.doubtful_tags:
            doubtful.update(range(m.start, m.end + 1))
    for m in matches:
        if m.negated_by is not None:
            explained.update(range(min(m.negated_by, m.start), m.end + 1))
    for start, end in dismissed:  # a safety rule's own `unless` set these words aside
        explained.update(range(start, end + 1))
    known_names = {n.lower() for name in names for n in name.replace("-", " ").split()}
    unaccounted: list[str] = []
    unknown_topic: list[str] = []
    off_topic: list[str] = []
    unreadable: list[str] = []
    count = 0
    english = 0
    only_pleasantries = True
    enquiry_asked = False
    for first, last in words.sentences():
        positions = [p for p in range(first, last + 1) if words.stems[p] not in BOUNDARIES]
        count += len(positions)
        english_words = [
            p for p in positions if not _one_letter_repeated(words.plains[p]) and (
                words.plains[p] in accounting.neutral_words
                or words.stems[p] in accounting.routine_words
                or accounting.suspicious(words.stems[p], words.plains[p])
                or _a_number(words, p))]
        english += len(english_words)
        # A letter or two ("A: AAAAAAAAJ", "AA:AAAAAAAAAC") is no English to read a
        # passage by, nor is one short word ("AAA:AAAAAAAAC") or a number: it takes a
        # word of four letters, or two words ("he is 66"), unless the rest are names.
        # One letter repeated ("AAAA"; "AAAA:Aaaaaaan", found by Hypothesis) is no word
        # either, whatever a word list holds.
        lengths = [len(words.plains[p]) for p in english_words if not _a_number(words, p)]
        rest_are_names = all(p in english_words or words.plains[p] in known_names
                             or _capitalised(words, p) for p in positions)
        readable = len(lengths) > 1 or any(n > 3 for n in lengths) or (
            bool(english_words) and rest_are_names)
        only_pleasantries = only_pleasantries and all(
            words.stems[p] in accounting.pleasantry_words or looks_like_a_name(words, p, first)
            or words.plains[p] in known_names for p in positions)
        has_enquiry = any(p in enquiry_positions for p in positions)
        enquiry_asked = enquiry_asked or has_enquiry and _asks(words, first, last)
        if words.sentence[first] in safety_sentences:
            continue  # a safety sentence is already a person's to read, with its reason
        strange = [
            p for p in positions
            if p in doubtful or (
                p not in enquiry_positions
                and words.stems[p] not in accounting.routine_words
                and not _a_number(words, p)
                and words.plains[p] not in known_names
                and not looks_like_a_name(words, p, first))
        ]
        if not strange:
            continue
        quoted = _quote(words, first, last)
        unaccounted.append(quoted)
        if not has_enquiry:
            off_topic.append(quoted)
        if not readable:
            unreadable.append(words.quote(first, last))
        # A word a safety rule uses (or of feeling, ending, harm) that no rule explained,
        # or, in a sentence about no enquiry, a word that is not everyday English (slang,
        # a misspelling): possibly a concern in words mailbot does not know.
        # A word just after "not" ("it isn't hurting") is denied, not alarming.
        alarming = [p for p in strange if p not in explained and not any(
            words.stems[q] in negators for q in range(max(first, p - 2), p))]
        if any(p in doubtful or _suspicious(words, p, accounting) for p in alarming) or (
            not has_enquiry
            and any(not everyday_word(words.plains[p], accounting) for p in alarming)
        ):
            unknown_topic.append(quoted)
    return Account(tuple(unaccounted), tuple(unknown_topic), tuple(off_topic),
                   tuple(unreadable), bool(enquiry_positions), enquiry_asked, count,
                   only_pleasantries, english / count if count else 1.0)


# Words that make a sentence a question or a request, with or without its question mark.
_ASKING = frozenset({"can", "could", "how", "would", "may", "please", "pls", "plz", "who",
                     "what", "when", "where", "which", "whether", "advise", "wondering",
                     "ask", "asking", "wat", "wot", "wen", "cud", "cn"})


def _asks(words: Words, first: int, last: int) -> bool:
    """The sentence is a question or a request ("can he attend?", "please advise")."""
    end = words.spans[last][1]
    if "?" in words.text[end:end + 3]:
        return True
    return any(words.plains[p] in _ASKING for p in range(first, last + 1))


def _a_number(words: Words, position: int) -> bool:
    """A number, a reference or a prisoner number, also one typed with a space before its
    two closing letters ("S4436 YY")."""
    plain = words.plains[position]
    if _NUMBER.fullmatch(plain):
        return True
    return (len(plain) == 2 and plain.isalpha() and position > 0
            and bool(_PRISONER_NUMBER_HEAD.fullmatch(words.plains[position - 1])))


def _suspicious(words: Words, position: int, accounting: Accounting) -> bool:
    plain = words.plains[position]
    if accounting.suspicious(words.stems[position], plain):
        return True
    # A misspelling of a suspicious word ("sucidal", "hurtin") is suspicious too.
    return plain not in accounting.neutral_words and any(
        accounting.suspicious(stem(word), word) for word in _one_slip(plain)
        if word in accounting.neutral_words)


def everyday_word(plain: str, accounting: Accounting) -> bool:
    """An everyday English word, or one slip of the keyboard away from one ("daugter")."""
    if plain in accounting.neutral_words:
        return True
    return len(plain) >= 4 and any(word in accounting.neutral_words for word in _one_slip(plain))


def _one_slip(word: str) -> set[str]:
    """Every word one deletion, swap, replacement or insertion away (Norvig's edits1)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = [a + b[1:] for a, b in splits if b]
    swaps = [a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1]
    replaces = [a + c + b[1:] for a, b in splits if b for c in letters]
    inserts = [a + c + b for a, b in splits for c in letters]
    return set(deletes + swaps + replaces + inserts)


def looks_like_a_name(words: Words, position: int, sentence_start: int) -> bool:
    """A capitalised word inside a sentence ("Thanks, Kerry", "from Lithuania"), or a
    sign-off of capitalised words alone ("Okafor", "Mrs J. Whitcombe")."""
    def written(p: int) -> str:
        return words.text[words.spans[p][0]:words.spans[p][1]]

    if not _capitalised(words, position):
        return False
    if position != sentence_start:
        # An initial counts after a title or a name ("Mrs J. Whitcombe").
        return len(written(position)) > 1 or words.plains[position - 1] in _TITLES or (
            _capitalised(words, position - 1) and words.stems[position - 1] not in BOUNDARIES)
    end = position
    while end + 1 < len(words.stems) and words.stems[end + 1] not in BOUNDARIES:
        end += 1
    return end - position < 3 and all(_capitalised(words, p) for p in range(position, end + 1))


def _capitalised(words: Words, position: int) -> bool:
    """Written with a capital and then lower case ("Kerry", "J"), as a name is."""
    w = words.text[words.spans[position][0]:words.spans[position][1]]
    return bool(w) and w[0].isupper() and (len(w) == 1 or w[1:].islower())


def _one_letter_repeated(word: str) -> bool:
    """"aaaa" is in no vocabulary a passage can be read by, whatever a word list holds
    ("AA", the meetings, is)."""
    return len(word) > 2 and len(set(word)) == 1


def _quote(words: Words, first: int, last: int) -> str:
    text = " ".join(words.quote(first, last).split()).replace('"', "'")
    if len(text) > _QUOTE_CHARS:
        text = text[:_QUOTE_CHARS - 3].rstrip() + "..."
    return text
