"""Reading a text: how a family's words become the forms the rules match.

HTML tags and `>` quote marks go, entities are decoded, and the text is cut into words
and boundaries (`.`/`!`/`?`/`;`/blank line end a sentence; `,`/`:`/` - ` end a clause).
Each word is lower-cased, loses its apostrophes (`can't` -> `cant`), is respelt through
the rules' `[spelling]` table (`suicidle` -> `suicidal`, `2nite` -> `tonight`) and is
stemmed by the Snowball English stemmer, so one rule word matches its usual forms.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

SENTENCE, CLAUSE = "|", ","
BOUNDARIES = (SENTENCE, CLAUSE)

_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=20_000)
def stem(word: str) -> str:
    """The Snowball (Porter 2) stem of one lower-case word: harm, harmed and harming are
    one word to the rules; text-speak "harmin" and "cuttin" are read as "-ing"."""
    if len(word) >= 5 and word.endswith("in") and word[-3] not in "aeiouy" and word.isalpha():
        word += "g"
    return _stemmer.stemWord(word)


def plain(word: str) -> str:
    return word.lower().replace("'", "")


_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_TAG_BREAK = re.compile(r"(?i)<\s*(?:br|/tr|/li|/h\d)\b[^<>]*>")
_TAG_PARA = re.compile(r"(?i)<\s*(?:/p|/div|p|div|hr)\b[^<>]*>")
_TAG = re.compile(r"<[A-Za-z!/][^<>]*>")
_PICTOGRAPH = re.compile(
    "[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF][\uFE0F\u200D]*")
_QUOTE_MARKS = re.compile(r"(?m)^[ \t]*(?:>[ \t]?)+")
_PIECES = re.compile(
    r"(?P<word>[^\W_]+(?:'[^\W_]+)*)"
    r"|(?P<currency>[\u00a3$\u20ac])"
    r"|(?P<sentence>\n[ \t]*\n|[.!?;\u2026]+)"
    r"|(?P<clause>[,:()\[\]\u2013\u2014]|\s-+\s|\n[ \t]*[-*\u2022])"
)


def clean_text(text: str) -> str:
    """The text as staff would read it: HTML tags and quote marks removed, entities
    decoded, quotes and dashes made plain. Reasons quote from this text."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "<" in text:
        text = _TAG_BREAK.sub("\n", text)
        text = _TAG_PARA.sub("\n\n", text)
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text).translate(_QUOTES)
    if ">" in text:
        text = _QUOTE_MARKS.sub("", text)
    return text


def respell(raw: str, spelling: Mapping[str, tuple[str, ...]]) -> tuple[tuple[str, str], ...]:
    """(stem, plain) pairs for one written word: `[spelling]` may replace it by one or more
    words (looked up as written, without apostrophes, then by stem for longer words)."""
    lower = raw.lower()
    flat = lower.replace("'", "")
    replacement = spelling.get(lower) or spelling.get(flat)
    if replacement is None:
        stemmed = stem(flat)
        if len(stemmed) >= 5:
            replacement = spelling.get("~" + stemmed)
            if replacement is not None and [stem(w) for w in replacement] == [stemmed]:
                # Only another form of the word itself ("phone" for the slip "phonin"):
                # it stays as written, so "=phone" and the vocabularies still know it.
                replacement = None
    if replacement is None and lower.endswith("'ll") and len(lower) > 4:
        base = flat[:-2]  # "laces'll reach": laces will reach
        return ((stem(base), base), ("will", "will"))
    if replacement is None and lower.startswith(("t'", "th'")) and lower.count("'") == 1:
        rest = lower.split("'", 1)[1]  # Yorkshire's "ovver t'railings": over the railings
        if len(rest) > 1:
            return (("the", "the"), *respell(rest, spelling))
    if replacement is None:
        return ((stem(flat), flat),)
    return tuple((stem(w), w) for w in replacement)


@dataclass
class Words:
    """One text cut into words and boundary marks, in the forms the rules match."""

    text: str  # cleaned text, for quoting
    stems: list[str]  # per position: stem, or "|" / "," for a boundary
    plains: list[str]  # per position: the word as respelt, or the boundary mark
    spans: list[tuple[int, int]]  # per position: where in `text`
    sentence: list[int]  # per position: sentence number
    joined: str  # " stem/plain stem/plain | ... " for phrases
    joined_starts: list[int]
    plain: str  # " plain plain | ... " for regex entries
    plain_starts: list[int]

    def quote(self, start: int, end: int) -> str:
        """The family's words from position `start` to `end`, as staff would read them."""
        return self.text[self.spans[start][0]:self.spans[end][1]]

    def sentences(self) -> list[tuple[int, int]]:
        """(first, last) word positions of each sentence, boundaries left out."""
        found: list[tuple[int, int]] = []
        first = None
        for pos, word in enumerate(self.stems):
            if word == SENTENCE:
                if first is not None:
                    found.append((first, pos - 1))
                first = None
            elif first is None and word != CLAUSE:
                first = pos
        if first is not None:
            found.append((first, len(self.stems) - 1))
        return found


def read(
    text: str, spelling: Mapping[str, tuple[str, ...]], emoji: Mapping[str, str] | None = None
) -> Words:
    """Cut a text into the words and boundaries the rules match (see the module's doc).
    Emoji used as words (a pill, a rope, a coffin) are read as the words `emoji` gives."""
    cleaned = clean_text(text)
    if emoji and not cleaned.isascii():
        for symbol, meaning in emoji.items():
            if symbol in cleaned:
                cleaned = cleaned.replace(symbol, f" {meaning} ")
        # Any other pictograph is read as the word "emoji": something said that no rule
        # knows, so the text is not accounted for and a person reads it.
        cleaned = _PICTOGRAPH.sub(" emoji ", cleaned)
    stems: list[str] = []
    plains: list[str] = []
    spans: list[tuple[int, int]] = []
    for m in _PIECES.finditer(cleaned):
        kind = m.lastgroup
        if kind == "word" or kind == "currency":
            for s, p in respell("pounds" if kind == "currency" else m.group(), spelling):
                stems.append(s)
                plains.append(p)
                spans.append(m.span())
            continue
        mark = SENTENCE if kind == "sentence" else CLAUSE
        if stems and stems[-1] in BOUNDARIES:
            if mark == SENTENCE:
                stems[-1] = plains[-1] = SENTENCE
            continue
        if stems:
            stems.append(mark)
            plains.append(mark)
            spans.append(m.span())
    sentence = []
    number = 0
    for s in stems:
        if s == SENTENCE:
            number += 1
        sentence.append(number)
    joined_parts = [
        s if s in BOUNDARIES else f"{s}/{p}" for s, p in zip(stems, plains, strict=True)
    ]
    return Words(cleaned, stems, plains, spans, sentence, *_joined(joined_parts), *_joined(plains))


def _joined(parts: list[str]) -> tuple[str, list[int]]:
    starts = []
    pos = 1
    for part in parts:
        starts.append(pos)
        pos += len(part) + 1
    return " " + " ".join(parts) + " ", starts
