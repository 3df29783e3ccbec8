"""Rule objects: each names what it looks for, the level it raises and why, so that
every decision triage makes can be shown to staff as the rule that made it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mailbot.triage.phrases import PhraseSet


@dataclass(frozen=True)
class Signal:
    """One named rule: phrases that, when found un-negated, raise a level and category."""

    name: str
    category: str  # "" for a general safety worry or a marker
    level: str
    tags: frozenset[str]
    phrases: PhraseSet | None  # on the stem/plain word string
    regex: re.Pattern[str] | None  # compiled regex entries, on the plain string
    unless: re.Pattern[str] | None
    negatable: bool
    description: str = ""
    # Enquiry categories this signal is only the occasion of: when one of them is named
    # too, it is what is asked ("posted in" his glasses: property, not letters).
    yields_to: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Combination:
    """Signals with all of `when` tags found near each other raise the urgency to `level`."""

    name: str
    when: tuple[str, ...]
    level: str
    within: int  # words between them; 0 = anywhere in the text
    same_sentence: bool
    category: str = ""  # added to the categories when it fires
    description: str = ""


@dataclass(frozen=True)
class Lower:
    """A `tags` match in the same sentence as a `near` marker (and no `unless_near`) counts
    at `level` instead of its own: an attempt told as history is urgent, not immediate."""

    name: str
    tags: frozenset[str]
    near: frozenset[str]
    unless_near: frozenset[str]
    level: str
    description: str = ""


@dataclass(frozen=True)
class Occasion:
    """A routine signal told only as the reason for an enquiry the text names (a death,
    and a request to attend the funeral): the enquiry is what is asked, so the signal
    raises nothing, unless another safety signal or an `unless` marker is found too."""

    name: str
    signals: frozenset[str]
    enquiries: frozenset[str]
    unless: frozenset[str]
    description: str = ""


@dataclass(frozen=True)
class Negation:
    window: int
    negators: frozenset[str]
    linking: frozenset[str]
    coordinators: frozenset[str]
    breakers: frozenset[str]
    undo: re.Pattern[str] | None = None  # "never X but he is now": X counts after all
    undo_within: int = 8
    conditionals: frozenset[str] = frozenset()  # "if he doesnt pay up": not a denial




@dataclass(frozen=True)
class Accounting:
    """What an automatic reply needs: every sentence accounted for as routine."""

    routine_words: frozenset[str]  # stems of words that may stand in a routine enquiry
    # Stems of words of feeling, ending, harm... and every word a safety rule uses: a
    # sentence holding one that no rule explains goes to a person as safer custody.
    suspicious_words: frozenset[str]
    suspicious_prefixes: tuple[str, ...]
    neutral_words: frozenset[str]  # common English words as written (not stems)
    pleasantry_words: frozenset[str]  # greetings, thanks and sign-offs
    max_words: int
    # Tags of markers whose words, however everyday ("he'll do it", "this is it"), say
    # something no enquiry says: a sentence holding one is a person's to read.
    doubtful_tags: frozenset[str] = frozenset()

    def english_word(self, plain: str) -> bool:
        """A word of the English vocabularies (as written, lower case, no diacritics)."""
        return plain in self.neutral_words

    def suspicious(self, stem: str, plain: str) -> bool:
        return stem in self.suspicious_words or plain.startswith(self.suspicious_prefixes)


@dataclass(frozen=True, eq=False)
class TriageRules:
    """Compiled triage rules: load once with `load_rules()`, reuse for every text."""

    signals: tuple[Signal, ...]
    combinations: tuple[Combination, ...]
    lowers: tuple[Lower, ...]
    negation: Negation
    topics: Mapping[str, tuple[str, str]]  # normalised label -> (category, level)
    urgency_choices: Mapping[str, str]  # normalised label -> level
    spelling: Mapping[str, tuple[str, ...]]
    accounting: Accounting
    emoji: Mapping[str, str]
    source: str = ""
    occasions: tuple[Occasion, ...] = ()
