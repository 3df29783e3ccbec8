"""Triage decides whether a family's contact is a safer custody concern, how urgent it is
(immediate, urgent, routine, or not safer custody), what it is about, and whether the
whole text is a routine enquiry that may be answered automatically; and it says why.

The text decides, not the form: the family's chosen topic and urgency are hints that add
to what the words say, outweighed only by a text that is plainly a routine enquiry (and
then the reply is still a draft). A contact is `not_safer_custody` only when nothing in its
subject or text, topic or urgency choice is a safety signal and the text holds an enquiry;
recall beats precision. An automatic reply needs more: positive evidence that every
sentence is routine (`accounting`), in English (`language`).

The rules are data (`rules.toml`, read by `rules_file`); `reading` cuts a text into
words, `phrases` compiles the rules' phrase syntax, `matching` finds, negates, lowers
and combines matches. Everything here is a pure function of the text and the rules:
compile once with `load_rules()` and reuse the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mailbot.parsers.contact import ParsedContact, Source
from mailbot.triage.accounting import account, everyday_word, looks_like_a_name
from mailbot.triage.categories import (
    CATEGORIES,
    ENQUIRY,
    ENQUIRY_CATEGORIES,
    IDIOM,
    IMMEDIATE,
    MARKER,
    NOT_SAFER_CUSTODY,
    RANK,
    RELATED_ENQUIRIES,
    ROUTINE,
    SAFETY_CATEGORIES,
    SAFETY_LEVELS,
    SPECIFIC_ENQUIRIES,
    URGENCIES,
    URGENT,
)
from mailbot.triage.language import (
    Identified,
    assess_foreign,
    foreign_vocabularies,
    identify,
    load_languages,
    mixed_language,
    read_folded,
)
from mailbot.triage.matching import Match, combine, excerpt, find, lower, negate
from mailbot.triage.phrases import TriageRulesError
from mailbot.triage.reading import Words, clean_text, read, stem
from mailbot.triage.rules import Occasion, Signal, TriageRules
from mailbot.triage.rules_file import default_rules_path, label_key
from mailbot.triage.rules_file import load_rules as _load_rules

__all__ = [
    "CATEGORIES", "ENQUIRY_CATEGORIES", "IMMEDIATE", "NOT_SAFER_CUSTODY", "RANK", "ROUTINE",
    "SAFETY_CATEGORIES", "URGENCIES", "URGENT", "TriageResult", "TriageRules",
    "TriageRulesError", "clean_text", "default_rules_path", "load_rules", "stem", "triage",
    "triage_contact",
]


# Share of a text's words found in the English vocabularies above which it is English.
ENGLISH_BY_WORDS = 0.85
# Below this share, a text the detector takes for English only at low confidence is
# not English enough to treat as an enquiry.
PROBABLY_ENGLISH_BY_WORDS = 0.75


@dataclass(frozen=True)
class TriageResult:
    is_safer_custody: bool
    categories: tuple[str, ...]
    urgency: str  # "immediate" | "urgent" | "routine" | "not_safer_custody"
    reasons: tuple[str, ...]
    # Sentences that are neither recognised routine enquiry nor pleasantry: shown to
    # staff ("mailbot could not account for: ..."); any of them rules out an automatic reply.
    unaccounted: tuple[str, ...] = ()
    language: str = "en"  # ISO 639-1 code of the free text, as identified
    routine: bool = False  # the whole text is accounted for: an automatic reply may go
    assessed: bool = True  # False: in a language mailbot has no rules for; tell staff now


def triage(
    text: str,
    *,
    topic: str = "",
    urgency_choice: str = "",
    subject: str = "",
    rules: TriageRules,
    names: Iterable[str] = (),
) -> TriageResult:
    """Triage one contact: its free text, and the subject, topic and urgency choice.
    `names` are the names the form gave (the family's, the prisoner's): words that
    account for themselves in a routine enquiry."""
    whole = f"{subject}\n\n{text}" if subject else text
    words = read(whole, rules.spelling, rules.emoji)
    matches, set_aside = find(words, rules)
    negate(matches, words, rules.negation)
    lower(matches, words, rules.lowers)
    combos = combine(matches, words, rules)
    live = [m for m in matches if m.negated_by is None]

    levels = [rule.level for rule, _ in combos]
    reasons = [reason for _, reason in combos]
    first: dict[str, Match] = {}
    for m in live:
        best = first.get(m.signal.name)
        if best is None or RANK.get(m.level, -1) > RANK.get(best.level, -1):
            first[m.signal.name] = m
    ordered = sorted(first.values(), key=lambda m: (-RANK.get(m.level, -1), m.start))
    accounted = account(words, matches, rules.accounting, names, rules.negation.negators,
                        set_aside)
    # An occasion needs an enquiry asked (a sentence naming one is a question or a
    # request), not a routine noun in passing ("he went silent on the phone").
    occasion = _occasion(live, bool(combos), rules) if accounted.enquiry_asked else None
    safety_categories: list[str] = []
    enquiry_categories: list[str] = []
    for m in ordered:
        if m.level == IDIOM:
            reasons.append(f"figure of speech: {excerpt(words, m.start, m.end)} "
                           f"(rule {m.signal.name}, not a signal)")
        if m.level in (MARKER, IDIOM):
            continue
        quoted = excerpt(words, m.start, m.end)
        label = m.signal.category or "safety"
        if occasion is not None and m.signal.name in occasion.signals:
            reasons.append(f"{label}: {quoted} (the occasion of what is asked, rule "
                           f"{occasion.name}: not a safety signal)")
            continue
        detail = m.note or f"{m.level}, rule {m.signal.name}"
        reasons.append(f"{label}: {quoted} ({detail})")
        if m.level in SAFETY_LEVELS:
            levels.append(m.level)
            if m.signal.category:
                safety_categories.append(m.signal.category)
    named = {m.signal.category for m in first.values() if m.level == ENQUIRY}
    move = first.get("release_transfer")
    if move is not None and _ahead(words, move.start):
        # A release or move still to come ("when he is released, will his property go with
        # him?") is what is asked, not the occasion of a loss.
        named -= move.signal.yields_to
    for m in sorted(first.values(),
                    key=lambda m: (_precedence(m.signal, named), m.start)):
        if m.level == ENQUIRY:
            enquiry_categories.append(m.signal.category)

    seen_negated: set[str] = set()
    for m in matches:
        if m.negated_by is not None and m.signal.name not in seen_negated:
            seen_negated.add(m.signal.name)
            reasons.append(f"negated: {excerpt(words, m.negated_by, m.end)} "
                           f"(rule {m.signal.name}, ignored)")

    if not levels and accounted.unknown_topic:
        # Words no rule explains: when in doubt it is a safety concern, and a person
        # decides; it is never signposted away on one routine word.
        levels.append(ROUTINE)
        reasons.append("could not account for: " + " / ".join(
            f'"{quote}"' for quote in accounted.unknown_topic[:3])
            + " (words no rule explains: treated as safer custody)")
    if not levels and not enquiry_categories and whole.strip() and not (
            accounted.word_count and accounted.only_pleasantries):
        # Nothing in the text says what this is: it is never signposted on the topic alone.
        levels.append(ROUTINE)
        reasons.append("no enquiry recognised in the text: treated as safer custody")

    # The form's choices only add, unless the text itself says the safety choice was a
    # slip ("ticked the wrong box", "he's fine") and nothing else in it is a concern.
    # A denial ("he's not suicidal") reassures as much as "he's fine" does.
    reassured = next((m for m in live if m.level == MARKER
                      and "reassurance" in m.signal.tags), None) or next(
        (m for m in matches if m.negated_by is not None), None)
    topic_category, topic_level, choice_level = _form_hints(topic, urgency_choice, rules,
                                                            reasons)
    # A routine topic chosen is outweighed by a text accounted for as routine, unless it
    # gives the enquiry its context ("Debt" and a request to send money). "I am worried
    # about their safety" is outweighed by a text that names an enquiry, holds nothing of
    # concern, and says nothing unexplained beside the enquiry: the family ticked the box,
    # the words say what it is about. Either way a person reads the reply before it goes.
    related = set(RELATED_ENQUIRIES.get(topic_category, ())) & set(enquiry_categories)
    topic_outweighed = not topic_level or (
        accounted.complete and not related and topic_level == ROUTINE)
    choice_outweighed = not choice_level or (accounted.enquiry_found
                                             and not accounted.off_topic)
    hinted = bool(topic_level or choice_level)
    form_outweighed = hinted and not levels and (
        reassured is not None or (topic_outweighed and choice_outweighed))
    if form_outweighed and reassured is not None:
        reasons.append(f"form choice outweighed: the text says "
                       f"{excerpt(words, reassured.start, reassured.end)}")
    elif form_outweighed:
        reasons.append("form choice outweighed: the text is a routine enquiry and holds "
                       "nothing of concern")
    else:
        levels.extend(level for level in (topic_level, choice_level) if level)

    if accounted.english_share >= ENGLISH_BY_WORDS or (
            accounted.word_count and accounted.only_pleasantries):
        # Its words are English words: no need to ask the (slow to load) detector. Names
        # and greetings alone ("Mrs J Whitcombe") are no language either: the detector
        # would guess one (Tagalog) and send it to the safety team as unreadable. Every
        # language's rules still read them, and nothing in them is answered automatically.
        identified = Identified("en", "English", accounted.english_share, True)
    else:
        identified = identify(text, accounted.english_share)
    mixed = None
    if identified.code == "en" and accounted.english_share < 1.0:
        # Several words of another language's own vocabulary ("vreau", "multumesc")
        # in English sentences: not confidently English, whatever the detector says.
        mixed = mixed_language(words, lambda w: everyday_word(w, rules.accounting),
                               lambda p, first: looks_like_a_name(words, p, first))
    if mixed is not None:
        code, own_words = mixed
        identified = Identified(code, load_languages()[code].name, 0.0, False)
        reasons.append(f"language:{code} mixed with English ({identified.name} words: "
                       + ", ".join(own_words) + ")")
    foreign_categories: list[str] = []
    # In an English text only matches holding a non-English word count; the English
    # rules judge the rest.
    found_foreign = False
    english_word = rules.accounting.english_word if identified.english else _no_word
    languages = load_languages()
    # A language identified with rules of its own is read by those alone (Portuguese
    # rules misread Spanish); otherwise by every language's (mixed texts, Urdu in Latin
    # letters, Polish without diacritics taken for Czech).
    readers = ([languages[identified.code]] if identified.code in languages
               else languages.values())
    if identified.english and accounted.english_share == 1.0:
        readers = []  # every word English: no other language's match could count
    folded = read_folded(text) if readers else None
    def read_with(readers: Iterable) -> None:
        nonlocal found_foreign
        for language_rules in readers:
            finding = assess_foreign(folded, language_rules, english_word)
            reasons.extend(finding.reasons)
            if finding.level:
                found_foreign = True
                levels.append(finding.level)
                foreign_categories.extend(finding.categories)

    read_with(readers)
    if not found_foreign and len(readers) == 1:
        # An identification whose language's rules found nothing (Roman Urdu taken for
        # Albanian, Punjabi in Latin letters for Welsh, however sure the detector is):
        # every other language's rules read it too.
        read_with(r for r in languages.values() if r is not readers[0])
    assessed = True
    if not found_foreign and accounted.unreadable and (
            identified.code == "en" or accounted.english_share >= 0.7):
        # A passage in no English words that no language's rules explained (French after
        # an English line): it cannot be assessed, as a whole text in its language could
        # not, whether the whole is surely English or only probably ("AABPE:OGAPRKA"),
        # or mostly English words taken for another language ("ABEQR:TDMQTDE").
        # A text taken for another language is judged as that text, below ("Preciso de
        # levar passaporte" in a Portuguese text is no Italian passage).
        part = identify(" ".join(accounted.unreadable), 0.0)
        if not part.english and part.code not in languages:
            assessed = False
            levels.append(URGENT)
            reasons.append(f"could not be assessed: a passage in {part.name} "
                           f"(mailbot has no rules for it)")
    if not identified.english and identified.code != "en":
        reasons.append(f"language:{identified.code} ({identified.name}, confidence "
                       f"{identified.confidence:.2f}): treated as safer custody")
        levels.append(ROUTINE)
        if identified.code not in load_languages() and not found_foreign:
            assessed = False
            levels.append(URGENT)
            reasons.append(f"could not be assessed: {identified.name} "
                           "(mailbot has no rules for it)")
    elif not identified.english and accounted.english_share < PROBABLY_ENGLISH_BY_WORDS:
        # Romanised Punjabi ("main apne bete nu milan aana chaunda haan, visit kive book
        # karni hai?") is taken for English at 0.3: with a quarter of its words in no
        # English vocabulary, it is another language until a person says otherwise.
        reasons.append(f"language: probably English (confidence "
                       f"{identified.confidence:.2f}) but {accounted.english_share:.0%} of "
                       "its words English: treated as safer custody")
        levels.append(ROUTINE)
    elif not identified.english:
        reasons.append(f"language: probably English (confidence "
                       f"{identified.confidence:.2f}), not sure enough to answer "
                       "automatically")

    combo_categories = [rule.category for rule, _ in combos]
    # The text says which department an enquiry is for; the topic chosen on the form is
    # a hint ("Something else" for a question about the chaplain), so it comes after.
    topic_first = topic_category not in ENQUIRY_CATEGORIES or not enquiry_categories
    categories = _unique([*safety_categories, *foreign_categories, *combo_categories,
                          topic_category if topic_first else "", *enquiry_categories,
                          topic_category])
    urgency = max(levels, key=RANK.__getitem__) if levels else NOT_SAFER_CUSTODY
    routine = (
        not levels
        and not form_outweighed
        and occasion is None  # a death, say, told with the question: a person replies
        and identified.english
        and accounted.complete
        and accounted.word_count <= rules.accounting.max_words
    )
    return TriageResult(
        is_safer_custody=bool(levels),
        categories=categories or ("other",),
        urgency=urgency,
        reasons=tuple(reasons),
        unaccounted=accounted.unaccounted,
        language=identified.code,
        routine=routine,
        assessed=assessed,
    )


def _occasion(live: list[Match], combined: bool, rules: TriageRules) -> Occasion | None:
    """The [[occasion]] by which every safety match is only the reason for an enquiry the
    text names (his gran's death, and may he attend the funeral), if there is one."""
    found = {m.signal.name for m in live if m.level in SAFETY_LEVELS}
    if combined or not found:
        return None
    named = {m.signal.category for m in live if m.level == ENQUIRY}
    tags = {tag for m in live if m.level == MARKER for tag in m.signal.tags}
    return next((o for o in rules.occasions if found <= o.signals
                 and named & o.enquiries and not tags & o.unless), None)


def _form_hints(
    topic: str, urgency_choice: str, rules: TriageRules, reasons: list[str]
) -> tuple[str, str, str]:
    """What the family chose on the form, as hints: the topic's category and level and the
    urgency choice's level ("" for none); whether the text outweighs them is the caller's."""
    category = topic_level = choice_level = ""
    if topic.strip():
        hint = rules.topics.get(label_key(topic))
        if hint is None:
            reasons.append(f"topic hint: {topic.strip()} (not in the rules, ignored)")
        else:
            category, level = hint
            if level in SAFETY_LEVELS:
                topic_level = level
                reasons.append(f"topic hint: {topic.strip()} ({level})")
            else:
                reasons.append(f"topic hint: {topic.strip()}")
    if urgency_choice.strip():
        level = rules.urgency_choices.get(label_key(urgency_choice))
        if level is not None:
            choice_level = level
            reasons.append(f"urgency choice: {urgency_choice.strip()} ({level})")
    return category, topic_level, choice_level


def load_rules(path: Path | str | None = None) -> TriageRules:
    """The English rules (`rules_file.load_rules`), with the other languages' rules checked
    too, so that a broken rules file of either kind stops mailbot at start."""
    rules = _load_rules(path)
    load_languages()
    foreign_vocabularies()
    return rules


def _precedence(signal: Signal, named: set[str]) -> int:
    """A specific department's place in SPECIFIC_ENQUIRIES; the generic ones after, equal;
    last, a signal that is only the occasion of a department also named (`yields_to`)."""
    if named & signal.yields_to:
        return len(SPECIFIC_ENQUIRIES) + 1
    if signal.category in SPECIFIC_ENQUIRIES:
        return SPECIFIC_ENQUIRIES.index(signal.category)
    return len(SPECIFIC_ENQUIRIES)


# Words that put a release or a move ahead, not behind: "when he is released", "he will
# be moved", "due for release".
_AHEAD = frozenset({"when", "once", "will", "wil", "wll", "going", "gonna", "due", "before",
                    "until", "till", "soon", "shall", "would", "if"})


# "when he got shipped out", "once he was moved": a "when" that tells of the past.
_PAST = frozenset({"got", "was", "were", "went", "came", "had", "did", "left", "moved",
                   "transferred", "shipped", "released", "ghosted"})


def _ahead(words: Words, position: int) -> bool:
    """The sentence holding this position says what is to come."""
    sentence = words.sentence[position]
    plains = words.plains
    return any(plains[p] in _AHEAD and not (
        plains[p] in ("when", "once") and any(
            q < len(plains) and words.sentence[q] == sentence and plains[q] in _PAST
            for q in (p + 1, p + 2)))
        for p in range(len(plains)) if words.sentence[p] == sentence)


def _no_word(word: str) -> bool:
    return False


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def triage_contact(contact: ParsedContact, rules: TriageRules) -> TriageResult:
    """Triage a parsed contact: its concern text, subject, topic and urgency choice."""
    # A portal form's subject is the portal's own words, not the family's.
    subject = "" if contact.source == Source.PORTAL_FORM else contact.subject
    return triage(
        contact.concern_text,
        topic=contact.topic,
        urgency_choice=contact.urgency_choice,
        subject=subject,
        rules=rules,
        names=(contact.submitter.name, contact.prisoner.name),
    )
