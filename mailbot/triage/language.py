"""Language: decides which language a contact's free text is in, and reads the
non-English texts mailbot has rules for (Welsh and the languages of the largest groups of
foreign nationals in prisons in England and Wales; see `languages.toml`).

Only text that is confidently English may be answered automatically or judged by the
English rules alone. Any other text is flagged `language:<code>` and is a safer custody
concern until staff say otherwise; when mailbot has no rules for its language it cannot
assess it at all, and the safety team is told at once.

Identification uses lingua (`lingua-language-detector`), which ships its models and
works offline. Its detector takes a few seconds and a few hundred MB to build, so it is
built once, on first use, for the languages below only.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from mailbot.triage.categories import IMMEDIATE, SAFETY_CATEGORIES, URGENT
from mailbot.triage.phrases import PhraseCompiler, TriageRulesError
from mailbot.triage.reading import SENTENCE, Words, read

ENGLISH = "en"
# English needs this confidence (or twice the runner-up's) to be answered automatically;
# another language needs this much to be named as the text's language.
ENGLISH_CONFIDENCE = 0.45
OTHER_CONFIDENCE = 0.5
# Below this share of English words a text is mixed, not English, whatever the detector says.
MIXED_BELOW = 0.7
_MIN_LETTERS = 12  # too short to tell: "ok", "thanks x", "A1234BC"
# A text with this many words of another language's own vocabulary is mixed, not English,
# however English the detector finds the rest ("Hello, vreau sa book a visit ...
# Multumesc"): a word of it that could be English (one in the English vocabularies, or a
# slip of the keyboard away from one) counts half, so that text-speak, typos and dialect
# ("stil", "foto", "mam") do not add up to it.
MIXED_WORDS = 2.0
# The languages with rules whose word lists (wordfreq's) mark their words in English text:
# a word among a language's common ones (zipf 3 or more), far commoner there than in
# English (by 1.5 zipf) and rare in English (below zipf 3.5).
_WORD_LISTS = ("pl", "ro", "lt", "pt", "es")

# Languages the detector chooses among, beyond those with rules: common in UK prisons'
# mail or close to one that has rules (so that it is not mistaken for it).
_ALSO_DETECTED = (
    "ARABIC", "BENGALI", "BULGARIAN", "CZECH", "DUTCH", "FRENCH", "GERMAN", "HINDI",
    "HUNGARIAN", "IRISH", "ITALIAN", "LATVIAN", "PERSIAN", "PUNJABI", "RUSSIAN", "SLOVAK",
    "SOMALI", "TURKISH", "UKRAINIAN", "URDU", "VIETNAMESE", "CROATIAN",
    "BOSNIAN", "SERBIAN", "TAGALOG", "YORUBA", "SWAHILI",
)

_LEVELS = (URGENT, IMMEDIATE, "means", "time")
_FOLD = str.maketrans({"ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "ß": "ss", "ı": "i",
                       "ø": "o", "æ": "ae", "œ": "oe", "ŵ": "w", "ŷ": "y",
                       # Urdu typed on an Arabic keyboard: yeh, kaf and heh as Urdu writes them
                       "\u064a": "\u06cc", "\u0643": "\u06a9", "\u0647": "\u06c1",
                       "\u0640": None})  # tatweel, a stretching stroke, is no letter


@dataclass(frozen=True)
class Identified:
    code: str  # ISO 639-1, "en" when English or too short to tell
    name: str
    confidence: float
    english: bool  # confidently English: the English rules alone may judge it


@dataclass(frozen=True)
class ForeignSignal:
    name: str
    level: str  # urgent | immediate | means | time
    category: str
    description: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class ForeignRules:
    code: str
    name: str
    lingua: str
    signals: tuple[ForeignSignal, ...]
    # A language's own common words for telling it mixed into English, where wordfreq has
    # no list for it (Urdu typed in Latin letters)
    own_words: frozenset[str] = frozenset()


def fold(text: str) -> str:
    """Lower case without diacritics, so "żyć" and "zyc" read alike."""
    text = unicodedata.normalize("NFKD", text.translate(_FOLD).lower())
    return "".join(c for c in text if not unicodedata.combining(c))


def default_languages_path() -> Path:
    return Path(str(resources.files("mailbot.triage").joinpath("languages.toml")))


@cache
def load_languages(path: Path | None = None) -> dict[str, ForeignRules]:
    """The non-English rules by language code; raises TriageRulesError naming the entry."""
    source = path or default_languages_path()
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TriageRulesError(f"{source}: {exc}") from None
    compiler = PhraseCompiler({}, 3)
    languages: dict[str, ForeignRules] = {}
    for entry in raw.get("language", []):
        code = entry.get("code", "?")
        where = f"{source} [[language]] {code!r}"
        signals = []
        for signal in entry.get("signal", []):
            at = f"{where} signal {signal.get('name', '?')!r}"
            level = signal.get("level")
            if level not in _LEVELS:
                raise TriageRulesError(f"{at}: level {level!r} is not one of {_LEVELS}")
            category = signal.get("category", "suicide_self_harm")
            if category not in SAFETY_CATEGORIES:
                raise TriageRulesError(f"{at}: category {category!r} is not a safety category")
            phrases = [fold(p).replace("-", " ") for p in signal.get("phrases", [])]
            pattern = compiler.pattern(phrases, at)
            if pattern is None:
                raise TriageRulesError(f"{at}: needs phrases")
            signals.append(ForeignSignal(signal["name"], level, category,
                                         signal.get("description", ""), pattern))
        own_words = frozenset(fold(w) for line in entry.get("own_words", [])
                              for w in line.split())
        languages[code] = ForeignRules(code, entry.get("name", code), entry.get("lingua", ""),
                                       tuple(signals), own_words)
    return languages


@cache
def _detector():  # noqa: ANN202 - lingua's types
    from lingua import Language, LanguageDetectorBuilder

    names = {"ENGLISH", "WELSH", *_ALSO_DETECTED}
    names |= {rules.lingua for rules in load_languages().values() if rules.lingua}
    chosen = [getattr(Language, n) for n in sorted(names) if hasattr(Language, n)]
    # Low accuracy mode (trigrams only) loads in a tenth of the time and memory; the
    # detector only names the language: every language's rules read the text anyway.
    return LanguageDetectorBuilder.from_languages(*chosen).with_low_accuracy_mode().build()


def identify(text: str, english_share: float = 1.0) -> Identified:
    """The language of a text. `english_share` is the share of its words that are
    English words: a text the detector calls English but whose words are largely not
    (English mixed with Urdu in Latin letters, say) is named by its other language."""
    letters = sum(c.isalpha() for c in text)
    if letters < _MIN_LETTERS:
        return Identified(ENGLISH, "English", 0.0, True)
    values = _detector().compute_language_confidence_values(text)
    top = values[0]
    second = values[1].value if len(values) > 1 else 0.0
    code = top.language.iso_code_639_1.name.lower()
    name = top.language.name.title()
    if code == ENGLISH and english_share < MIXED_BELOW:
        other = next((v for v in values[1:] if v.language.name != "ENGLISH"), None)
        if other is not None:
            return Identified(other.language.iso_code_639_1.name.lower(),
                              other.language.name.title(), other.value, False)
    if code == ENGLISH:
        confident = top.value >= ENGLISH_CONFIDENCE or top.value >= 2 * second
        return Identified(ENGLISH, "English", top.value, confident)
    if top.value < OTHER_CONFIDENCE and second and values[1].language.name == "ENGLISH":
        return Identified(ENGLISH, "English", values[1].value, False)
    return Identified(code, name, top.value, False)


@cache
def foreign_vocabularies() -> dict[str, frozenset[str]]:
    """Each word-listed language's own common words, folded, that are not English ones.
    From wordfreq's small lists (words once in a million or commoner): a third of the
    time and half the memory of its large ones, and a word rarer than that in English
    counts as not English."""
    from wordfreq import get_frequency_dict

    english = get_frequency_dict("en", wordlist="small")
    vocabularies = {}
    for code in _WORD_LISTS:
        own = set()
        for word, frequency in get_frequency_dict(code, wordlist="small").items():
            if frequency < 1e-6:  # zipf 3
                continue
            folded = fold(word)
            if len(folded) < 3 or not folded.isalpha():
                continue
            in_english = max(english.get(word, 0.0), english.get(folded, 0.0))
            if in_english < 10 ** -5.5 and frequency >= 10 ** 1.5 * in_english:
                own.add(folded)
        vocabularies[code] = frozenset(own)
    for code, rules in load_languages().items():
        if rules.own_words:
            vocabularies[code] = vocabularies.get(code, frozenset()) | rules.own_words
    return vocabularies


def mixed_language(
    words: Words, english_like: Callable[[str], bool], a_name: Callable[[int, int], bool]
) -> tuple[str, tuple[str, ...]] | None:
    """The language whose own words are mixed into a text (`MIXED_WORDS` or more), and
    those words; None when there is none. Names inside a sentence (`a_name`) are not
    words of a language; a word that could be English (`english_like`) counts half."""
    found: dict[str, set[str]] = {}
    vocabularies = foreign_vocabularies()
    for first, last in words.sentences():
        for p in range(first, last + 1):
            word = fold(words.text[words.spans[p][0]:words.spans[p][1]])
            if len(word) < 3 or (p != first and a_name(p, first)):
                continue
            for code, own in vocabularies.items():
                if word in own:
                    found.setdefault(code, set()).add(word)
    best, score = None, 0.0
    for code, own_words in found.items():
        weight = sum(0.5 if english_like(w) else 1.0 for w in own_words)
        if weight > score:
            best, score = code, weight
    if best is None or score < MIXED_WORDS:
        return None
    return best, tuple(sorted(found[best]))


@dataclass(frozen=True)
class ForeignFinding:
    level: str  # immediate | urgent | "" (nothing found)
    categories: tuple[str, ...]
    reasons: tuple[str, ...]


def read_folded(text: str) -> Words:
    """The text as every language's rules read it: folded, not respelt or stemmed."""
    return read(fold(text), {})


def assess_foreign(
    text: str | Words, rules: ForeignRules, english: Callable[[str], bool] = lambda word: False
) -> ForeignFinding:
    """What the rules for one language find: a safety signal is urgent, and immediate
    with an act, or together with a means or a time; a means and a time together (a plan)
    are immediate on their own. A match made only of English words (`english`) does not
    count: the English rules judge those, negations and all."""
    words = read_folded(text) if isinstance(text, str) else text
    fired: dict[str, list[ForeignSignal]] = {}
    reasons = []
    for signal in rules.signals:
        for match in signal.pattern.finditer(words.joined):
            matched = [p.split("/")[-1] for p in match.group(1).split()
                       if p not in (SENTENCE, ",")]
            if not all(english(word) for word in matched):
                break
        else:
            continue
        fired.setdefault(signal.level, []).append(signal)
        quoted = " ".join(matched)
        reasons.append(f"{signal.category or 'safety'}: \"{quoted}\" "
                       f"({rules.name}, {signal.level}, rule {signal.name})")
    safety = fired.get(IMMEDIATE, []) + fired.get(URGENT, [])
    if not safety and fired.get("means") and fired.get("time"):
        return ForeignFinding(IMMEDIATE, ("suicide_self_harm",), (
            *reasons, f"immediate: a means and a time together ({rules.name}, a plan)"))
    if not safety:
        return ForeignFinding("", (), tuple(reasons))
    level = URGENT
    if fired.get(IMMEDIATE) or fired.get("means") or fired.get("time"):
        level = IMMEDIATE
    categories = tuple(dict.fromkeys(s.category for s in safety))
    return ForeignFinding(level, categories, tuple(reasons))
