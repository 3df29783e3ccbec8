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


class TriageRulesError(ValueError):
    """The triage rules file is unreadable or has an invalid entry (named in the message)."""


@dataclass(frozen=True)
class Piece:
    """A compiled part of a phrase: its regex, and whether it may match nothing."""

    regex: str
    optional: bool = False


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
        # Every word a pattern can match ("s:stem", "p:plain", "x:prefix", "#"): a text
        # holding none of a rule's words cannot match it, and is not searched for it.
        self.vocabulary: set[str] = set()
        self.group_vocabulary: dict[str, frozenset[str]] = {}
        self.needed: list[set[str]] = []  # per phrase: words of which a text needs one

    def item(self, item: str, where: str, allow_groups: bool = True) -> Piece:
        if item == "#":
            self.vocabulary.add("#")
            return Piece(r"[0-9]+/[0-9]+ ")
        if allow_groups and item.startswith("{") and item.endswith("}"):
            name = item[1:-1]
            if name not in self.groups:
                known = ", ".join(sorted(self.groups)) or "none"
                raise TriageRulesError(f"{where}: unknown word group {{{name}}} (known: {known})")
            self.vocabulary |= self.group_vocabulary[name]
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
            self.vocabulary.add(f"p:{flat}")
            return Piece(rf"[^ /]+/{re.escape(flat)} ")
        if prefix:
            if len(flat) < 3:
                raise TriageRulesError(f"{where}: {item!r}: a prefix needs 3 letters or more")
            if self.collecting and allow_groups and len(flat) >= 4:
                self.literal_prefixes.add(flat)
            self.vocabulary.add(f"x:{flat}")
            return Piece(rf"[^ /]+/{re.escape(flat)}[^ ]* ")
        words = respell(word, self.spelling)
        self.vocabulary.add(f"s:{words[0][0]}")
        if allow_groups:
            for _, written in words:
                self._note(written)
        return Piece("".join(rf"{re.escape(s)}/[^ ]+ " for s, _ in words))

    def _note(self, word: str) -> None:
        if self.collecting:
            self.literal_stems.update(s for s, _ in respell(word, self.spelling))

    @staticmethod
    def sequence(pieces: list[Piece]) -> Piece:
        return Piece("".join(p.regex for p in pieces), all(p.optional for p in pieces))

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
        alts = [
            self.sequence([self.item(w, where, allow_groups) for w in a.split()])
            for a in alternatives
        ]
        regex = alts[0].regex if len(alts) == 1 else "(?:" + "|".join(a.regex for a in alts) + ")"
        if optional:
            return Piece(f"(?:{regex})?", True)
        return Piece(regex)

    def phrase(self, phrase: str, where: str) -> Piece:
        slots = self._SLOTS.findall(phrase)
        if not slots:
            raise TriageRulesError(f"{where}: empty phrase")
        if slots[0] == ".." or slots[-1] == "..":
            raise TriageRulesError(f"{where}: a phrase cannot start or end with '..'")
        # Only a one-word phrase says its word alone is a sign ("funeral", "suicid*"); the
        # words of longer phrases ("better off dead") are everyday words on their own.
        collecting, self.collecting = self.collecting, self.collecting and len(slots) == 1
        outer, needed = self.vocabulary, None
        pieces = []
        try:
            for s in slots:
                self.vocabulary = set()
                piece = Piece(self.gap, True) if s == ".." else self.slot(s, where)
                pieces.append(piece)
                # A text must hold a word of every required slot: keep the first one that
                # names its words (not a {group} of pronouns that every text holds).
                if not piece.optional and "{" not in s and needed is None:
                    needed = self.vocabulary
                outer |= self.vocabulary
        finally:
            self.collecting = collecting
            self.needed.append(needed if needed is not None else set(outer))
            self.vocabulary = outer
        compiled = self.sequence(pieces)
        if compiled.optional:
            raise TriageRulesError(f"{where}: a phrase needs at least one required word")
        return compiled

    def add_group(self, name: str, entries: list[str], where: str) -> None:
        alts = []
        for i, entry in enumerate(entries, 1):
            parts = entry.split()
            if not parts:
                raise TriageRulesError(f"{where} entry {i}: empty")
            at = f"{where} entry {i} ({entry!r})"
            alts.append(self.sequence([self.slot(p, at, False) for p in parts]))
        self.groups[name] = Piece("(?:" + "|".join(a.regex for a in alts) + ")")
        self.group_vocabulary[name] = frozenset(self.vocabulary)
        self.vocabulary = set()

    def single_stems(self, words: Iterable[str], where: str) -> frozenset[str]:
        stems = set()
        for word in words:
            if not isinstance(word, str) or not self._WORD.fullmatch(word.lower()):
                raise TriageRulesError(f"{where}: {word!r} must be one plain word")
            stems.update(s for s, _ in respell(word.lower(), self.spelling))
        return frozenset(stems)

    def pattern(self, phrases: list[str], where: str) -> re.Pattern[str] | None:
        """All the phrases as one pattern that finds every match, overlapping ones too,
        at the start of a word (group 1 is the match); None when there are none."""
        self.vocabulary = set()
        self.needed = []
        if not phrases:
            return None
        regexes = dict.fromkeys(self.phrase(p, f"{where} {p!r}").regex for p in phrases)
        self.vocabulary = set().union(*self.needed)
        return re.compile("(?<= )(?=(" + "|".join(f"(?:{r})" for r in regexes) + "))")
