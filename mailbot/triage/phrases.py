"""Compiling phrases: turns the phrase syntax of the rules file into regular expressions.

A text is matched as one string of words, each written `stem/plain` and followed by a
space, with `|` and `,` standing for sentence and clause ends (see `reading`). So a
phrase never matches across a boundary, and `..` (a gap) skips only words.

Syntax: words in order; `{group}` any entry of a [words] group; `word*` any word starting
so; `=word` exactly this word, not its other forms; `a|b` either word; `(a b|c)` either of
several words; `[a b|c]` optional; `..` up to `gap_words` other words; `#` a number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mailbot.triage.reading import respell

_ANY_FORM = "/[^ ]+ "  # after a stem: the word as written, whatever it is


class TriageRulesError(ValueError):
    """The triage rules file is unreadable or has an invalid entry (named in the message)."""


@dataclass(frozen=True)
class Piece:
    """A compiled part of a phrase: its regex, whether it may match nothing, and its gate:
    words ("s:stem", "p:plain", "x:prefix", "#") of which a text must hold one for the
    piece to match, and how common the commonest of them is in English."""

    regex: str
    optional: bool = False
    gate: frozenset[str] = frozenset()
    commonness: int = 0


@dataclass(frozen=True)
class PhraseSet:
    """A rule's phrases, compiled one by one. A phrase can match only a text holding a
    word of its gate, so a text is searched only for the phrases its own words call up."""

    patterns: tuple[re.Pattern[str], ...]  # in the rules' order
    called_by: Mapping[str, tuple[int, ...]]  # word -> the phrases it calls up

    def starts(self, joined: str, present: set[str]) -> list[tuple[int, int]]:
        """Character spans of the matches in a `reading.Words.joined` string, one per
        word where a phrase matches: the first phrase (in the rules' order) that does,
        as one alternation of them all would find."""
        called: set[int] = set()
        for word in self.called_by.keys() & present:
            called.update(self.called_by[word])
        found: dict[int, int] = {}
        for number in sorted(called):
            for m in self.patterns[number].finditer(joined):
                found.setdefault(m.start(1), m.end(1))
        return sorted(found.items())


class PhraseCompiler:
    """Compiles phrases against one rules file's spelling table and word groups."""

    _WORD = re.compile(r"[^\W_]+(?:'[^\W_]*)*")  # letters of any script, digits
    _SLOTS = re.compile(r"\([^()\[\]]*\)|\[[^()\[\]]*\]|[^\s()\[\]]+|\S")

    def __init__(self, spelling: Mapping[str, tuple[str, ...]], gap_words: int) -> None:
        self.spelling = spelling
        self.gap = rf"(?:[^ |,]+ ){{0,{gap_words}}}"
        self.groups: dict[str, Piece] = {}
        # While `collecting`, the words written literally in phrases are noted: they are
        # the words of safety rules, which never count as routine (see accounting).
        self.collecting = False
        self.literal_stems: set[str] = set()
        self.literal_prefixes: set[str] = set()
        # English words by how common they are (wordfreq's list, commonest first): a
        # phrase's gate is the slot of its rarest words, so that most texts skip it.
        self._ranks = _english_ranks()

    def _gated(self, regex: str, entry: str, written: str) -> Piece:
        size = len(self._ranks)
        common = size if entry == "#" else size - self._ranks.get(written, size)
        return Piece(regex, gate=frozenset((entry,)), commonness=common)

    def item(self, item: str, where: str, allow_groups: bool = True) -> Piece:
        if item == "#":
            return self._gated(r"[0-9]+/[0-9]+ ", "#", "")
        if allow_groups and item.startswith("{") and item.endswith("}"):
            name = item[1:-1]
            if name not in self.groups:
                known = ", ".join(sorted(self.groups)) or "none"
                raise TriageRulesError(f"{where}: unknown word group {{{name}}} (known: {known})")
            return self.groups[name]
        exact = item.startswith("=")
        prefix = item.endswith("*")
        word = item[1:] if exact else item
        word = (word[:-1] if prefix else word).lower()
        if not self._WORD.fullmatch(word):
            hint = ' (write "self harm", not "self-harm": both spellings match)' if (
                "-" in word
            ) else ""
            raise TriageRulesError(f"{where}: {item!r} is not a word{hint}")
        flat = word.replace("'", "")
        if exact and prefix:
            raise TriageRulesError(f"{where}: {item!r} cannot be both =exact and prefix*")
        if exact:
            self._note(flat)
            return self._gated(rf"[^ /]+/{re.escape(flat)} ", f"p:{flat}", flat)
        if prefix:
            if len(flat) < 3:
                raise TriageRulesError(f"{where}: {item!r}: a prefix needs 3 letters or more")
            if self.collecting and allow_groups and len(flat) >= 4:
                self.literal_prefixes.add(flat)
            return self._gated(rf"[^ /]+/{re.escape(flat)}[^ ]* ", f"x:{flat}", flat)
        words = respell(word, self.spelling)
        if allow_groups:
            for _, written in words:
                self._note(written)
        return self._gated("".join(re.escape(s) + _ANY_FORM for s, _ in words),
                           f"s:{words[0][0]}", words[0][1])

    def _note(self, word: str) -> None:
        if self.collecting:
            self.literal_stems.update(s for s, _ in respell(word, self.spelling))

    @staticmethod
    def sequence(pieces: list[Piece]) -> Piece:
        """Pieces in order: a text must hold a word of each required one, so the gate of
        the rarest stands for them all."""
        required = [p for p in pieces if not p.optional and p.gate]
        rarest = min(required, key=lambda p: p.commonness, default=Piece(""))
        return Piece("".join(p.regex for p in pieces), all(p.optional for p in pieces),
                     rarest.gate, rarest.commonness)

    @staticmethod
    def either(alternatives: list[Piece], optional: bool = False) -> Piece:
        """One of several pieces: a text must hold a word of one of their gates."""
        regexes = [a.regex for a in alternatives]
        if len(regexes) == 1:
            regex = regexes[0]
        elif all(r.endswith(_ANY_FORM) and "/" not in r[:-len(_ANY_FORM)] for r in regexes):
            # Single words: "(?:a|b)/[^ ]+ " is "(?:a/[^ ]+ |b/[^ ]+ )", a third the size
            # to compile.
            regex = "(?:" + "|".join(r[:-len(_ANY_FORM)] for r in regexes) + ")" + _ANY_FORM
        else:
            regex = "(?:" + "|".join(regexes) + ")"
        if optional:
            return Piece(f"(?:{regex})?", True)
        gate = frozenset().union(*(a.gate for a in alternatives))
        if not all(a.gate for a in alternatives):
            gate = frozenset()  # an alternative no word calls up: no gate at all
        return Piece(regex, False, gate, max(a.commonness for a in alternatives))

    def slot(self, slot: str, where: str, allow_groups: bool = True) -> Piece:
        """One position of a phrase: `a|b`, `(a b|c)` or `[a b|c]` (optional)."""
        optional = slot.startswith("[")
        grouped = optional or slot.startswith("(")
        if grouped and not slot.endswith("]" if optional else ")"):
            raise TriageRulesError(f"{where}: unbalanced brackets in {slot!r}")
        if not grouped and slot in "()[]":
            raise TriageRulesError(f"{where}: unbalanced brackets")
        inner = slot[1:-1] if grouped else slot
        alternatives = inner.split("|")
        if any(not a.strip() for a in alternatives):
            raise TriageRulesError(f"{where}: empty alternative in {slot!r}")
        return self.either([
            self.sequence([self.item(w, where, allow_groups) for w in a.split()])
            for a in alternatives
        ], optional)

    def phrase(self, phrase: str, where: str) -> Piece:
        slots = self._SLOTS.findall(phrase)
        if not slots:
            raise TriageRulesError(f"{where}: empty phrase")
        if slots[0] == ".." or slots[-1] == "..":
            raise TriageRulesError(f"{where}: a phrase cannot start or end with '..'")
        # Only a one-word phrase says its word alone is a sign ("funeral", "suicid*"); the
        # words of longer phrases ("better off dead") are everyday words on their own.
        collecting, self.collecting = self.collecting, self.collecting and len(slots) == 1
        try:
            compiled = self.sequence([Piece(self.gap, True) if s == ".." else
                                      self.slot(s, where) for s in slots])
        finally:
            self.collecting = collecting
        if compiled.optional:
            raise TriageRulesError(f"{where}: a phrase needs at least one required word")
        return compiled

    def add_group(self, name: str, entries: list[str], where: str) -> None:
        alternatives = []
        for i, entry in enumerate(entries, 1):
            parts = entry.split()
            if not parts:
                raise TriageRulesError(f"{where} entry {i}: empty")
            at = f"{where} entry {i} ({entry!r})"
            alternatives.append(self.sequence([self.slot(p, at, False) for p in parts]))
        group = self.either(alternatives)
        self.groups[name] = Piece(f"(?:{group.regex})", False, group.gate, group.commonness)

    def single_stems(self, words: Iterable[str], where: str) -> frozenset[str]:
        stems = set()
        for word in words:
            if not isinstance(word, str) or not self._WORD.fullmatch(word.lower()):
                raise TriageRulesError(f"{where}: {word!r} must be one plain word")
            stems.update(s for s, _ in respell(word.lower(), self.spelling))
        return frozenset(stems)

    def phrase_set(self, phrases: list[str], where: str) -> PhraseSet | None:
        """The phrases compiled one by one, each called up by the words of its gate; a
        phrase without one (every slot a gap or optional) would be an error already."""
        compiled: dict[str, frozenset[str]] = {}
        for p in phrases:
            piece = self.phrase(p, f"{where} {p!r}")
            compiled.setdefault(piece.regex, piece.gate)
        if not compiled:
            return None
        called_by: dict[str, list[int]] = {}
        always = object()
        for number, gate in enumerate(compiled.values()):
            for word in gate or (always,):
                called_by.setdefault(word, []).append(number)
        if always in called_by:
            raise TriageRulesError(f"{where}: a phrase no word of a text calls up")
        return PhraseSet(
            tuple(re.compile(f"(?<= )(?=({regex}))") for regex in compiled),
            {word: tuple(numbers) for word, numbers in called_by.items()})

    def pattern(self, phrases: list[str], where: str) -> re.Pattern[str] | None:
        """All the phrases as one pattern that finds every match, overlapping ones too,
        at the start of a word (group 1 is the match); None when there are none."""
        if not phrases:
            return None
        regexes = dict.fromkeys(self.phrase(p, f"{where} {p!r}").regex for p in phrases)
        return re.compile("(?<= )(?=(" + "|".join(f"(?:{r})" for r in regexes) + "))")


def _english_ranks(size: int = 50_000) -> dict[str, int]:
    """English words by how common they are (0 the commonest), from wordfreq's lists."""
    from wordfreq import top_n_list

    return {word: rank for rank, word in enumerate(top_n_list("en", size))}
