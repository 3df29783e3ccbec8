"""Triage decides whether a family's contact is a safer custody concern, how urgent it is
(immediate, urgent, routine, or not safer custody) and what it is about, and says why.

The text decides, not the form: the family's chosen topic and urgency are hints that can
only add to what the words say. A contact is `not_safer_custody` only when nothing in its
subject or text, topic or urgency choice is a safety signal; recall beats precision.

The rules are data, not code. The canonical rules ship inside the package as
`mailbot/data/triage.toml`, whose header documents the format; `load_rules()` reads them.
Admins do not edit that file: `load_rules(path)` reads their own file, which either stands
alone or starts with `extends = "default"` and only adds to the shipped rules (annotated
example: `config/triage.toml`; mailbot's configuration names it as `[triage] rules_file`).
Loading validates everything and raises `TriageRulesError` (a `ValueError`) naming the file
and the bad entry, so a typo stops the daemon at start instead of silently missing concerns.

How a text is read, in short:
  1. HTML tags and `>` quote marks go, entities are decoded, and the text is cut into
     words and boundaries (`.`/`!`/`?`/`;`/blank line end a sentence; `,`/`:`/` - `
     end a clause). Each word is lower-cased, loses its apostrophes (`can't` -> `cant`),
     is respelt through the `[spelling]` table (`suicidle` -> `suicidal`, `2nite` ->
     `tonight`, `gonna` -> `going to`) and gets a light stem (`harming`, `harmed`,
     `harmin` -> `harm`; `bullied`, `bullies` -> `bully`), so a rule matches its forms.
  2. Every `[[signal]]` phrase is matched on whole words (phrase syntax: words, `{group}`,
     `word*`, `=word`, `a|b`, `(a b|c)`, `[optional]`, `..` gap, `#` number). A match
     preceded in its clause by a negator and only linking words ("not", "no thoughts of",
     "never been in") is negated: shown to staff, deciding nothing, unless undone ("never
     ... until now"). Negation never reaches past "but" or a sentence end, so a second,
     real signal still counts.
  3. `[[lower]]` rules lower an attempt told as history ("years ago"); `[[combination]]`
     rules raise signals found together ("tonight" + suicidal talk -> immediate; staff +
     violence in one sentence -> staff_conduct).
  4. Urgency is the highest level among fired signals, combinations, the topic hint and
     the urgency choice; categories are every fired category (safety ones first).

Everything here is a pure function of the text and the compiled rules; compile once with
`load_rules()` and reuse the result (thousands of texts a second).
"""

from __future__ import annotations

import html
import re
import tomllib
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from mailbot.concern import ParsedContact

# The contract with the rest of mailbot: categories and urgencies other modules rely on.
SAFETY_CATEGORIES: tuple[str, ...] = (
    "suicide_self_harm",
    "mental_health",
    "physical_health_medication",
    "bullying_violence_threats",
    "debt",
    "drugs_alcohol",
    "bereavement",
    "new_to_custody",
    "loss_of_contact",
    "staff_conduct",
)
ENQUIRY_CATEGORIES: tuple[str, ...] = (
    "visits",
    "property",
    "money",
    "phone_pin",
    "letters",
    "release_transfer",
    "complaint",
    "other",
)
CATEGORIES = SAFETY_CATEGORIES + ENQUIRY_CATEGORIES

IMMEDIATE, URGENT, ROUTINE = "immediate", "urgent", "routine"
NOT_SAFER_CUSTODY = "not_safer_custody"
URGENCIES: tuple[str, ...] = (IMMEDIATE, URGENT, ROUTINE, NOT_SAFER_CUSTODY)
SAFETY_LEVELS: tuple[str, ...] = (IMMEDIATE, URGENT, ROUTINE)
ENQUIRY, MARKER = "enquiry", "marker"
SIGNAL_LEVELS: tuple[str, ...] = SAFETY_LEVELS + (ENQUIRY, MARKER)
RANK: dict[str, int] = {NOT_SAFER_CUSTODY: 0, ROUTINE: 1, URGENT: 2, IMMEDIATE: 3}

DEFAULT_GAP_WORDS = 3
_SENTENCE, _CLAUSE = "|", ","
_EXCERPT_CHARS = 70


class TriageRulesError(ValueError):
    """The triage rules file is unreadable or has an invalid entry (named in the message)."""


@dataclass(frozen=True)
class TriageResult:
    is_safer_custody: bool
    categories: tuple[str, ...]
    urgency: str  # "immediate" | "urgent" | "routine" | "not_safer_custody"
    reasons: tuple[str, ...]


# --------------------------------------------------------------------------- words


def _has_vowel(word: str) -> bool:
    return any(c in "aeiouy" for c in word)


def _undouble(word: str) -> str:
    if len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "aeioulsz":
        return word[:-1]
    return word


def stem(word: str) -> str:
    """A light stem so one rule word matches its usual forms: harm/harms/harmed/harming/
    harmin, bully/bullied/bullies, cut/cuts/cutting. Irregular and very short words
    (owe/owed/owing, die/died/dying) are listed in the rules instead."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if len(word) >= 6 and word.endswith("in") and word[-3] not in "aeiouy":
        word += "g"  # text-speak "harmin", "cuttin"
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) >= 5 and _has_vowel(word[:-3]):
        word = _undouble(word[:-3])
    elif word.endswith("ied") and len(word) > 4:
        word = word[:-3] + "y"
    elif (
        word.endswith("ed")
        and len(word) > 4
        and not word.endswith("eed")
        and _has_vowel(word[:-2])
    ):
        word = _undouble(word[:-2])
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def _plain(word: str) -> str:
    return word.lower().replace("'", "")


_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_TAG_BREAK = re.compile(r"(?i)<\s*(?:br|/tr|/li|/h\d)\b[^<>]*>")
_TAG_PARA = re.compile(r"(?i)<\s*(?:/p|/div|p|div|hr)\b[^<>]*>")
_TAG = re.compile(r"<[A-Za-z!/][^<>]*>")
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


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Signal:
    """One named rule: phrases that, when found un-negated, raise a level and category."""

    name: str
    category: str  # "" for a general safety worry or a marker
    level: str
    tags: frozenset[str]
    # The phrases that can start with a given word, as one regex over the word string;
    # compiled when a text first has that word (a rules file has thousands of them).
    by_start: Mapping[Key, str]
    regex: re.Pattern[str] | None  # compiled regex entries, on the plain string
    unless: re.Pattern[str] | None
    negatable: bool
    description: str = ""


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
class Negation:
    window: int
    negators: frozenset[str]
    linking: frozenset[str]
    coordinators: frozenset[str]
    breakers: frozenset[str]
    undo: re.Pattern[str] | None = None  # "never X but he is now": X counts after all
    undo_within: int = 8
    conditionals: frozenset[str] = frozenset()  # "if he doesnt pay up": not a denial


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
    source: str = ""
    _cache: dict[str, tuple[tuple[str, str], ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _index: _StartIndex = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", _StartIndex(self.signals))

    def words(self, raw: str) -> tuple[tuple[str, str], ...]:
        """(stem, plain) pairs for one written word, after respelling."""
        cached = self._cache.get(raw)
        if cached is None:
            cached = respell(raw, self.spelling)
            if len(self._cache) < 50_000:
                self._cache[raw] = cached
        return cached


_Entry = tuple[int, str]  # (signal number, regex of the phrases starting with one word)
_Compiled = tuple[int, re.Pattern[str]]


class _StartIndex:
    """Which phrases can start at a word, looked up once per word of a text, so that a
    text is only searched where a phrase can begin (thousands of texts a second)."""

    def __init__(self, signals: tuple[Signal, ...]) -> None:
        self.stem: dict[str, list[_Entry]] = {}
        self.plain: dict[str, list[_Entry]] = {}
        self.prefix: dict[str, list[tuple[str, _Entry]]] = {}
        self.number: list[_Entry] = []
        self._cache: dict[tuple[str, str], tuple[_Compiled, ...]] = {}
        for i, signal in enumerate(signals):
            for (kind, text), regex in signal.by_start.items():
                entry = (i, regex)
                if kind == "stem":
                    self.stem.setdefault(text, []).append(entry)
                elif kind == "plain":
                    self.plain.setdefault(text, []).append(entry)
                elif kind == "prefix":
                    self.prefix.setdefault(text[:3], []).append((text, entry))
                else:
                    self.number.append(entry)

    def candidates(
        self, stems: list[str], plains: list[str]
    ) -> dict[int, list[tuple[int, re.Pattern[str]]]]:
        """Signal number -> (word position, phrases to try there)."""
        found: dict[int, list[tuple[int, re.Pattern[str]]]] = {}
        for pos, word in enumerate(zip(stems, plains, strict=True)):
            entries = self._cache.get(word)
            if entries is None:
                entries = self._entries(*word)
            for i, pattern in entries:
                found.setdefault(i, []).append((pos, pattern))
        return found

    def _entries(self, st: str, pl: str) -> tuple[_Compiled, ...]:
        entries = [*self.stem.get(st, ()), *self.plain.get(pl, ())]
        entries += [e for prefix, e in self.prefix.get(pl[:3], ()) if pl.startswith(prefix)]
        if pl.isdigit():
            entries += self.number
        compiled = tuple((i, _alternation(regex)) for i, regex in entries)
        if len(self._cache) < 50_000:
            self._cache[(st, pl)] = compiled
        return compiled


def respell(raw: str, spelling: Mapping[str, tuple[str, ...]]) -> tuple[tuple[str, str], ...]:
    """(stem, plain) pairs for one written word: `[spelling]` may replace it by one or more
    words (looked up as written, without apostrophes, then by stem for longer words)."""
    lower = raw.lower()
    plain = lower.replace("'", "")
    replacement = spelling.get(lower) or spelling.get(plain)
    if replacement is None:
        stemmed = stem(plain)
        if len(stemmed) >= 5:
            replacement = spelling.get("~" + stemmed)
    if replacement is None:
        return ((stem(plain), plain),)
    return tuple((stem(w), w) for w in replacement)


def _key(label: str) -> str:
    return " ".join(re.findall(r"[^\W_]+", label.casefold()))


Key = tuple[str, str]  # how a phrase can start: ("stem"|"plain"|"prefix"|"number", text)


@dataclass(frozen=True)
class _Piece:
    """Compiled phrase syntax: a regex over the word string, and the words it can start
    with, so that a text is only searched where a phrase can begin."""

    regex: str
    starts: frozenset[Key]
    optional: bool = False


class _Compiler:
    """Turns the phrase syntax of the rules file into regular expressions over the word
    string, where each word is written `stem/plain` and words are separated by spaces."""

    _WORD = re.compile(r"[a-z0-9']+")
    _SLOTS = re.compile(r"\([^()\[\]]*\)|\[[^()\[\]]*\]|[^\s()\[\]]+|\S")

    def __init__(self, spelling: Mapping[str, tuple[str, ...]], gap_words: int) -> None:
        self.spelling = spelling
        self.gap = rf"(?:[^ |,]+ ){{0,{gap_words}}}"
        self.groups: dict[str, _Piece] = {}

    def _words(self, word: str) -> tuple[tuple[str, str], ...]:
        return respell(word, self.spelling)

    def item(self, item: str, where: str, allow_groups: bool = True) -> _Piece:
        if item == "#":
            return _Piece(r"[0-9]+/[0-9]+ ", frozenset({("number", "")}))
        if allow_groups and item.startswith("{") and item.endswith("}"):
            name = item[1:-1]
            if name not in self.groups:
                known = ", ".join(sorted(self.groups)) or "none"
                raise TriageRulesError(f"{where}: unknown word group {{{name}}} (known: {known})")
            return self.groups[name]
        exact = item.startswith("=")
        prefix = item.endswith("*")
        word = item[1:] if exact else item
        word = word[:-1] if prefix else word
        word = word.lower()
        if not self._WORD.fullmatch(word):
            hint = ' (write "self harm", not "self-harm": both spellings match)' if (
                "-" in word
            ) else ""
            raise TriageRulesError(f"{where}: {item!r} is not a word{hint}")
        plain = word.replace("'", "")
        if exact and prefix:
            raise TriageRulesError(f"{where}: {item!r} cannot be both =exact and prefix*")
        if exact:
            return _Piece(rf"[^ /]+/{re.escape(plain)} ", frozenset({("plain", plain)}))
        if prefix:
            if len(plain) < 3:
                raise TriageRulesError(f"{where}: {item!r}: a prefix needs 3 letters or more")
            return _Piece(rf"[^ /]+/{re.escape(plain)}[^ ]* ", frozenset({("prefix", plain)}))
        words = self._words(word)
        return _Piece(
            "".join(rf"{re.escape(s)}/[^ ]+ " for s, _ in words),
            frozenset({("stem", words[0][0])}),
        )

    def sequence(self, pieces: list[_Piece]) -> _Piece:
        """Pieces in a row; it can start with any piece up to the first required one."""
        starts: set[Key] = set()
        for piece in pieces:
            starts |= piece.starts
            if not piece.optional:
                break
        return _Piece(
            "".join(p.regex for p in pieces),
            frozenset(starts),
            all(p.optional for p in pieces),
        )

    def slot(self, slot: str, where: str, allow_groups: bool = True) -> _Piece:
        """One position of a phrase: `a|b`, `(a b|c)` (alternatives of several words) or
        `[a b|c]` (optional)."""
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
        starts = frozenset().union(*(a.starts for a in alts))
        if optional:
            return _Piece(f"(?:{regex})?", starts, True)
        return _Piece(regex, starts)

    def phrase(self, phrase: str, where: str) -> _Piece:
        slots = self._SLOTS.findall(phrase)
        if not slots:
            raise TriageRulesError(f"{where}: empty phrase")
        if slots[0] == ".." or slots[-1] == "..":
            raise TriageRulesError(f"{where}: a phrase cannot start or end with '..'")
        pieces = [
            _Piece(self.gap, frozenset(), True) if s == ".." else self.slot(s, where)
            for s in slots
        ]
        phrase_piece = self.sequence(pieces)
        if phrase_piece.optional:
            raise TriageRulesError(f"{where}: a phrase needs at least one required word")
        return phrase_piece

    def add_group(self, name: str, entries: list[str], where: str) -> None:
        alts = []
        for i, entry in enumerate(entries, 1):
            parts = entry.split()
            if not parts:
                raise TriageRulesError(f"{where} entry {i}: empty")
            at = f"{where} entry {i} ({entry!r})"
            alts.append(self.sequence([self.slot(p, at, False) for p in parts]))
        self.groups[name] = _Piece(
            "(?:" + "|".join(a.regex for a in alts) + ")",
            frozenset().union(*(a.starts for a in alts)),
        )

    def single_stems(self, words: Iterable[str], where: str) -> frozenset[str]:
        stems = set()
        for word in words:
            if not isinstance(word, str) or not self._WORD.fullmatch(word.lower()):
                raise TriageRulesError(f"{where}: {word!r} must be one plain word")
            stems.update(s for s, _ in self._words(word.lower()))
        return frozenset(stems)


_TOP_KEYS = {
    "extends", "description", "settings", "spelling", "words", "negation",
    "topics", "urgency_choices", "signal", "combination", "lower",
}
_SIGNAL_KEYS = {
    "name", "category", "level", "tags", "phrases", "regex", "unless",
    "negatable", "description",
}
_COMBINATION_KEYS = {
    "name", "when", "level", "within", "same_sentence", "category", "description",
}
_LOWER_KEYS = {"name", "tags", "near", "unless_near", "level", "description"}
_NEGATION_KEYS = {
    "window", "negators", "linking_words", "coordinators", "scope_breakers", "undone_by",
    "not_after",
}
_SETTINGS_KEYS = {"gap_words"}
_LIST_KEYS = {"phrases", "regex", "unless", "tags", "when", "near", "unless_near"}


def default_rules_path() -> Path:
    """The shipped rules: `mailbot/data/triage.toml` inside the installed package."""
    return Path(str(resources.files("mailbot").joinpath("data/triage.toml")))


def load_rules(path: Path | str | None = None) -> TriageRules:
    """Read, validate and compile a rules file (the shipped default when `path` is None).

    Raises `TriageRulesError` (a ValueError) that names the file and the bad entry."""
    source = Path(path) if path is not None else default_rules_path()
    raw = _read_toml(source)
    extends = raw.pop("extends", None)
    if extends is not None:
        if extends != "default":
            raise TriageRulesError(f'{source}: extends must be "default", not {extends!r}')
        raw = _merge(_read_toml(default_rules_path()), raw, str(source))
    try:
        return _compile(raw, str(source))
    except TriageRulesError as exc:
        if str(exc).startswith(str(source)):
            raise
        raise TriageRulesError(f"{source}: {exc}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise TriageRulesError(f"triage rules file not found: {path}") from None
    except OSError as exc:
        raise TriageRulesError(f"cannot read triage rules {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TriageRulesError(f"{path}: not valid TOML: {exc}") from None


def _merge(base: dict[str, Any], extra: dict[str, Any], source: str) -> dict[str, Any]:
    """An extending file adds to the shipped rules: tables gain or replace entries, word
    lists grow, and a [[signal]] (or [[combination]], [[lower]]) with a shipped name gains
    its phrases and changes only the keys it gives; a new name is a new entry."""
    merged = dict(base)
    for key, value in extra.items():
        if key in ("signal", "combination", "lower"):
            if not isinstance(value, list):
                raise TriageRulesError(f"{source}: [[{key}]] must be an array of tables")
            entries = [dict(e) for e in base.get(key, [])]
            by_name = {e.get("name"): e for e in entries}
            for i, entry in enumerate(value, 1):
                if not isinstance(entry, dict):
                    raise TriageRulesError(f"{source}: [[{key}]] #{i} must be a table")
                target = by_name.get(entry.get("name"))
                if target is None:
                    entries.append(dict(entry))
                    continue
                for k, v in entry.items():
                    if k in _LIST_KEYS and isinstance(v, list):
                        target[k] = list(target.get(k, [])) + v
                    else:
                        target[k] = v
            merged[key] = entries
        elif key in ("words", "negation") and isinstance(value, dict):
            table = dict(base.get(key, {}))
            for k, v in value.items():
                old = table.get(k)
                table[k] = old + v if isinstance(old, list) and isinstance(v, list) else v
            merged[key] = table
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = {**base[key], **value}
        else:
            merged[key] = value
    return merged


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TriageRulesError(f"{where} must be a list of strings")
    return value


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise TriageRulesError(f"[{key}] must be a table")
    return value


def _unknown(keys: Iterable[str], known: set[str], where: str) -> None:
    extra = sorted(set(keys) - known)
    if extra:
        known_keys = ", ".join(sorted(known))
        raise TriageRulesError(f"{where}: unknown key {extra[0]!r} (known: {known_keys})")


def _level(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise TriageRulesError(f"{where}: level {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _compile(raw: dict[str, Any], source: str) -> TriageRules:
    _unknown(raw, _TOP_KEYS, "top level")
    settings = _table(raw, "settings")
    _unknown(settings, _SETTINGS_KEYS, "[settings]")
    gap_words = settings.get("gap_words", DEFAULT_GAP_WORDS)
    if isinstance(gap_words, bool) or not isinstance(gap_words, int) or not 1 <= gap_words <= 8:
        raise TriageRulesError("[settings] gap_words must be a whole number from 1 to 8")

    spelling: dict[str, tuple[str, ...]] = {}
    for written, meant in _table(raw, "spelling").items():
        where = f"[spelling] {written!r}"
        if not isinstance(meant, str) or not re.fullmatch(r"[a-z0-9' ]+", meant.lower().strip()):
            raise TriageRulesError(f"{where}: the replacement must be plain words")
        if not re.fullmatch(r"[a-z0-9']+", written.lower()):
            raise TriageRulesError(f"{where}: a misspelling is one word (letters, digits, ')")
        words = tuple(_plain(w) for w in meant.split())
        spelling[written.lower()] = words
        spelling.setdefault(_plain(written), words)
        if len(stem(_plain(written))) >= 5:
            spelling.setdefault("~" + stem(_plain(written)), words)

    compiler = _Compiler(spelling, gap_words)
    for name, entries in _table(raw, "words").items():
        where = f"[words] {name}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise TriageRulesError(f"{where}: a group name is lower-case letters, digits, _")
        compiler.add_group(name, _strings(entries, where), where)

    neg_raw = _table(raw, "negation")
    _unknown(neg_raw, _NEGATION_KEYS, "[negation]")
    window = neg_raw.get("window", 4)
    if isinstance(window, bool) or not isinstance(window, int) or not 0 <= window <= 10:
        raise TriageRulesError("[negation] window must be a whole number from 0 to 10")

    def words(key: str) -> list[str]:
        return _strings(neg_raw.get(key, []), f"[negation] {key}")

    def stems(key: str) -> frozenset[str]:
        return compiler.single_stems(words(key), f"[negation] {key}")

    negation = Negation(
        window=window,
        negators=stems("negators"),
        linking=stems("linking_words"),
        coordinators=stems("coordinators"),
        breakers=stems("scope_breakers"),
        undo=_join_phrases(compiler, words("undone_by"), "[negation] undone_by"),
        conditionals=stems("not_after"),
    )

    signals = []
    names: set[str] = set()
    raw_signals = raw.get("signal", [])
    if not isinstance(raw_signals, list):
        raise TriageRulesError("[[signal]] must be an array of tables")
    for i, entry in enumerate(raw_signals, 1):
        signals.append(_compile_signal(entry, i, compiler, names))
    if not signals:
        raise TriageRulesError("no [[signal]] entries")
    tags_known = {t for s in signals for t in s.tags}

    combinations = []
    for i, entry in enumerate(_array(raw, "combination"), 1):
        where = f"[[combination]] #{i} {entry.get('name', '?')!r}"
        _unknown(entry, _COMBINATION_KEYS, where)
        name = _name(entry, where)
        when = tuple(_strings(entry.get("when", []), f"{where} when"))
        if len(when) < 2:
            raise TriageRulesError(f"{where}: when needs two or more tags")
        _known_tags(when, tags_known, where)
        within = entry.get("within", 0)
        if isinstance(within, bool) or not isinstance(within, int) or within < 0:
            raise TriageRulesError(f"{where}: within must be a whole number (0 = anywhere)")
        same = entry.get("same_sentence", False)
        if not isinstance(same, bool):
            raise TriageRulesError(f"{where}: same_sentence must be true or false")
        level = _level(entry.get("level"), SAFETY_LEVELS, where)
        combinations.append(Combination(
            name, when, level, within, same, _category(entry.get("category"), level, where),
            str(entry.get("description", ""))))

    lowers = []
    for i, entry in enumerate(_array(raw, "lower"), 1):
        where = f"[[lower]] #{i} {entry.get('name', '?')!r}"
        _unknown(entry, _LOWER_KEYS, where)
        name = _name(entry, where)
        tags = frozenset(_strings(entry.get("tags", []), f"{where} tags"))
        near = frozenset(_strings(entry.get("near", []), f"{where} near"))
        unless_near = frozenset(_strings(entry.get("unless_near", []), f"{where} unless_near"))
        if not tags or not near:
            raise TriageRulesError(f"{where}: needs tags and near")
        _known_tags(tags | near | unless_near, tags_known, where)
        lowers.append(Lower(name, tags, near, unless_near,
                            _level(entry.get("level"), SAFETY_LEVELS, where),
                            str(entry.get("description", ""))))

    topics: dict[str, tuple[str, str]] = {}
    for label, value in _table(raw, "topics").items():
        where = f"[topics] {label!r}"
        if not isinstance(value, dict):
            raise TriageRulesError(f"{where}: must be {{ category = ..., level = ... }}")
        _unknown(value, {"category", "level"}, where)
        level = _level(value.get("level"), SAFETY_LEVELS + (ENQUIRY,), where)
        topics[_key(label)] = (_category(value.get("category"), level, where), level)

    choices: dict[str, str] = {}
    for label, level in _table(raw, "urgency_choices").items():
        where = f"[urgency_choices] {label!r}"
        choices[_key(label)] = _level(level, SAFETY_LEVELS, where)

    return TriageRules(tuple(signals), tuple(combinations), tuple(lowers), negation,
                       topics, choices, spelling, source)


def _array(raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise TriageRulesError(f"[[{key}]] must be an array of tables")
    return value


def _name(entry: dict[str, Any], where: str) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise TriageRulesError(f"{where}: name must be lower_case_with_underscores")
    return name


def _known_tags(tags: Iterable[str], known: set[str], where: str) -> None:
    for tag in tags:
        if tag not in known:
            raise TriageRulesError(f"{where}: no [[signal]] has the tag {tag!r}")


def _category(value: Any, level: str, where: str) -> str:
    value = "" if value is None else value
    if level == ENQUIRY:
        if value not in ENQUIRY_CATEGORIES:
            raise TriageRulesError(
                f"{where}: an enquiry needs a category from {', '.join(ENQUIRY_CATEGORIES)};"
                f" got {value!r}")
    elif level == MARKER:
        if value:
            raise TriageRulesError(f"{where}: a marker has no category")
    elif value and value not in SAFETY_CATEGORIES:
        raise TriageRulesError(
            f"{where}: category {value!r} is not a safety category"
            f" ({', '.join(SAFETY_CATEGORIES)}, or \"\" for a general worry)")
    return str(value)


def _join_phrases(compiler: _Compiler, phrases: list[str], where: str) -> re.Pattern[str] | None:
    """All the phrases as one compiled pattern, or None when there are none."""
    pieces = [compiler.phrase(p, f"{where} {p!r}") for p in phrases]
    return _alternation(_either(p.regex for p in pieces)) if pieces else None


def _phrases_by_start(compiler: _Compiler, phrases: list[str], where: str) -> dict[Key, str]:
    """The phrases grouped by the word they can start with, each group as one regex."""
    by_start: dict[Key, list[str]] = {}
    for phrase in phrases:
        piece = compiler.phrase(phrase, f"{where} {phrase!r}")
        for key in piece.starts:
            by_start.setdefault(key, []).append(piece.regex)
    return {key: _either(regexes) for key, regexes in by_start.items()}


def _either(regexes: Iterable[str]) -> str:
    return "|".join(dict.fromkeys(regexes))


@cache
def _alternation(regex: str) -> re.Pattern[str]:
    # Phrase regexes are built from re.escape()d words, so they always compile.
    return re.compile("(?<= )(?:" + regex + ")")


def _compile_signal(entry: Any, i: int, compiler: _Compiler, names: set[str]) -> Signal:
    if not isinstance(entry, dict):
        raise TriageRulesError(f"[[signal]] #{i} must be a table")
    where = f"[[signal]] #{i} {entry.get('name', '?')!r}"
    _unknown(entry, _SIGNAL_KEYS, where)
    name = _name(entry, where)
    if name in names:
        raise TriageRulesError(f"{where}: the name {name!r} is used twice")
    names.add(name)
    level = _level(entry.get("level"), SIGNAL_LEVELS, where)
    category = _category(entry.get("category"), level, where)
    phrases = _strings(entry.get("phrases", []), f"{where} phrases")
    regexes = _strings(entry.get("regex", []), f"{where} regex")
    if not phrases and not regexes:
        raise TriageRulesError(f"{where}: needs phrases or regex")
    negatable = entry.get("negatable", level in SAFETY_LEVELS)
    if not isinstance(negatable, bool):
        raise TriageRulesError(f"{where}: negatable must be true or false")

    def join(items: list[str], what: str) -> re.Pattern[str] | None:
        return _join_phrases(compiler, items, f"{where} {what}")

    regex = None
    if regexes:
        for r in regexes:
            try:
                re.compile(r)
            except re.error as exc:
                raise TriageRulesError(f"{where} regex {r!r}: {exc}") from None
        regex = re.compile("|".join(f"(?:{r})" for r in regexes))
    return Signal(
        name=name,
        category=category,
        level=level,
        tags=frozenset(_strings(entry.get("tags", []), f"{where} tags")),
        by_start=_phrases_by_start(compiler, phrases, f"{where} phrase"),
        regex=regex,
        unless=join(_strings(entry.get("unless", []), f"{where} unless"), "unless"),
        negatable=negatable,
        description=str(entry.get("description", "")),
    )


# --------------------------------------------------------------------------- reading


@dataclass
class _Words:
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


def _read(text: str, rules: TriageRules) -> _Words:
    cleaned = clean_text(text)
    stems: list[str] = []
    plains: list[str] = []
    spans: list[tuple[int, int]] = []
    for m in _PIECES.finditer(cleaned):
        kind = m.lastgroup
        if kind == "word" or kind == "currency":
            for s, p in rules.words("pounds" if kind == "currency" else m.group()):
                stems.append(s)
                plains.append(p)
                spans.append(m.span())
            continue
        mark = _SENTENCE if kind == "sentence" else _CLAUSE
        if stems and stems[-1] in (_SENTENCE, _CLAUSE):
            if mark == _SENTENCE:
                stems[-1] = plains[-1] = _SENTENCE
            continue
        if stems:
            stems.append(mark)
            plains.append(mark)
            spans.append(m.span())
    sentence = []
    number = 0
    for s in stems:
        if s == _SENTENCE:
            number += 1
        sentence.append(number)
    joined_parts = [
        s if s in (_SENTENCE, _CLAUSE) else f"{s}/{p}" for s, p in zip(stems, plains, strict=True)
    ]
    return _Words(
        cleaned, stems, plains, spans, sentence, *_joined(joined_parts), *_joined(plains)
    )


def _joined(parts: list[str]) -> tuple[str, list[int]]:
    starts = []
    pos = 1
    for part in parts:
        starts.append(pos)
        pos += len(part) + 1
    return " " + " ".join(parts) + " ", starts


@dataclass
class _Match:
    signal: Signal
    start: int  # first word position
    end: int  # last word position (inclusive)
    level: str
    negated_by: int | None = None
    note: str = ""


def _spans(
    pattern: re.Pattern[str], string: str, starts: list[int]
) -> Iterable[tuple[int, int]]:
    """Word spans (first, last) of the pattern's matches anywhere in the string."""
    return _word_spans(pattern.finditer(string), string, starts)


def _word_spans(
    found: Iterable[re.Match[str] | None], string: str, starts: list[int]
) -> Iterable[tuple[int, int]]:
    for m in found:
        if m is None:
            continue
        a, b = m.span()
        while a < b and string[a] == " ":
            a += 1
        if b <= a:
            continue
        first = bisect_right(starts, a) - 1
        last = bisect_right(starts, b - 1) - 1
        if string[b - 1] == " ":
            last = bisect_right(starts, b - 2) - 1
        yield max(first, 0), max(last, first, 0)


def _find(words: _Words, rules: TriageRules) -> list[_Match]:
    found: list[_Match] = []
    candidates = rules._index.candidates(words.stems, words.plains)
    for i, signal in enumerate(rules.signals):
        hits: list[tuple[int, int]] = []
        if i in candidates:
            tries = (p.match(words.joined, words.joined_starts[pos]) for pos, p in candidates[i])
            hits.extend(_word_spans(tries, words.joined, words.joined_starts))
        if signal.regex is not None:
            hits.extend(_spans(signal.regex, words.plain, words.plain_starts))
        if not hits:
            continue
        if signal.unless is not None:
            blocked = list(_spans(signal.unless, words.joined, words.joined_starts))
            hits = [h for h in hits if not any(a <= h[1] and h[0] <= b for a, b in blocked)]
        found.extend(_Match(signal, a, b, signal.level) for a, b in dict.fromkeys(hits))
    found.sort(key=lambda m: (m.start, -m.end))
    return found


def _negate(matches: list[_Match], words: _Words, negation: Negation) -> None:
    negated_positions: set[int] = set()
    undo_starts: list[int] = []
    if negation.undo is not None and matches:
        undo_starts = [a for a, _ in _spans(negation.undo, words.joined, words.joined_starts)]
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
            if s in (_SENTENCE, _CLAUSE) or s in negation.breakers:
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


def _conditional(words: _Words, negator: int, negation: Negation) -> bool:
    """A negator just after "if" or "unless" ("if he doesnt pay up") denies nothing."""
    before = words.stems[max(0, negator - 2):negator]
    return any(s in negation.conditionals for s in before)


def _excerpt(words: _Words, start: int, end: int) -> str:
    text = words.text[words.spans[start][0]:words.spans[end][1]]
    # No double quotes inside: the excerpt stays one quoted span that alerts can strip.
    text = " ".join(text.split()).replace('"', "'")
    if len(text) > _EXCERPT_CHARS:
        text = text[:_EXCERPT_CHARS - 3].rstrip() + "..."
    return f'"{text}"'


def _lower(matches: list[_Match], words: _Words, lowers: tuple[Lower, ...]) -> None:
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
                              f"{_excerpt(words, near[0].start, near[0].end)}, rule {rule.name}")


def _combine(
    matches: list[_Match], words: _Words, rules: TriageRules
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
                near = [m for m in group if m is not first and _close(first, m, words, rule)]
                if not near:
                    break
                partners.append(near[0])
            else:
                quoted = " + ".join(_excerpt(words, m.start, m.end)
                                    for m in sorted([first, *partners], key=lambda m: m.start))
                label = rule.category or rule.level
                fired.append((rule, f"{label}: {quoted} ({rule.level}, rule {rule.name})"))
                break
    return fired


def _close(a: _Match, b: _Match, words: _Words, rule: Combination) -> bool:
    if rule.same_sentence and words.sentence[a.start] != words.sentence[b.start]:
        return False
    if rule.within == 0:
        return True
    return max(0, b.start - a.end, a.start - b.end) <= rule.within


# --------------------------------------------------------------------------- triage


def triage(
    text: str,
    *,
    topic: str = "",
    urgency_choice: str = "",
    subject: str = "",
    rules: TriageRules,
) -> TriageResult:
    """Triage one contact: its free text, and the subject, topic and urgency choice."""
    whole = f"{subject}\n\n{text}" if subject else text
    words = _read(whole, rules)
    matches = _find(words, rules)
    _negate(matches, words, rules.negation)
    _lower(matches, words, rules.lowers)
    combos = _combine(matches, words, rules)
    live = [m for m in matches if m.negated_by is None]

    levels = [rule.level for rule, _ in combos]
    reasons = [reason for _, reason in combos]
    first: dict[str, _Match] = {}
    for m in live:
        best = first.get(m.signal.name)
        if best is None or RANK.get(m.level, -1) > RANK.get(best.level, -1):
            first[m.signal.name] = m
    ordered = sorted(first.values(), key=lambda m: (-RANK.get(m.level, -1), m.start))
    safety_categories: list[str] = []
    enquiry_categories: list[str] = []
    for m in ordered:
        if m.level == MARKER:
            continue
        quoted = _excerpt(words, m.start, m.end)
        label = m.signal.category or "safety"
        detail = m.note or f"{m.level}, rule {m.signal.name}"
        reasons.append(f"{label}: {quoted} ({detail})")
        if m.level in SAFETY_LEVELS:
            levels.append(m.level)
            if m.signal.category:
                safety_categories.append(m.signal.category)
    for m in sorted(first.values(), key=lambda m: m.start):
        if m.level == ENQUIRY:
            enquiry_categories.append(m.signal.category)

    topic_category = _form_hints(topic, urgency_choice, rules, levels, reasons)

    seen_negated: set[str] = set()
    for m in matches:
        if m.negated_by is not None and m.signal.name not in seen_negated:
            seen_negated.add(m.signal.name)
            reasons.append(f"negated: {_excerpt(words, m.negated_by, m.end)} "
                           f"(rule {m.signal.name}, ignored)")

    if not levels and not enquiry_categories and whole.strip():
        # Nothing in the text says what this is: when in doubt, it is a safety concern,
        # and a person decides; it is never signposted away on the topic alone.
        levels.append(ROUTINE)
        reasons.append("no enquiry recognised in the text: treated as safer custody")

    combo_categories = [rule.category for rule, _ in combos]
    categories = _unique(
        [*safety_categories, *combo_categories, topic_category, *enquiry_categories]
    )
    urgency = max(levels, key=RANK.__getitem__) if levels else NOT_SAFER_CUSTODY
    return TriageResult(
        is_safer_custody=bool(levels),
        categories=categories or ("other",),
        urgency=urgency,
        reasons=tuple(reasons),
    )


def _form_hints(
    topic: str, urgency_choice: str, rules: TriageRules, levels: list[str], reasons: list[str]
) -> str:
    """What the family chose on the form: hints that can only add a level and a category.
    Returns the topic's category ("" when there is none)."""
    category = ""
    if topic.strip():
        hint = rules.topics.get(_key(topic))
        if hint is None:
            reasons.append(f"topic hint: {topic.strip()} (not in the rules, ignored)")
        else:
            category, level = hint
            if level in SAFETY_LEVELS:
                levels.append(level)
                reasons.append(f"topic hint: {topic.strip()} ({level})")
            else:
                reasons.append(f"topic hint: {topic.strip()}")
    if urgency_choice.strip():
        level = rules.urgency_choices.get(_key(urgency_choice))
        if level is not None:
            levels.append(level)
            reasons.append(f"urgency choice: {urgency_choice.strip()} ({level})")
    return category


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def triage_contact(contact: ParsedContact, rules: TriageRules) -> TriageResult:
    """Triage a parsed contact: its concern text, subject, topic and urgency choice."""
    return triage(
        contact.concern_text,
        topic=contact.topic,
        urgency_choice=contact.urgency_choice,
        subject=contact.subject,
        rules=rules,
    )
