"""Loading the rules file: reads, validates and compiles `rules.toml` (shipped with the
package) or an admin's own file that extends it.

The canonical rules ship as `mailbot/triage/rules.toml`, whose header documents the
format. Admins do not edit that file: `load_rules(path)` reads their own file, which
either stands alone or starts with `extends = "default"` and only adds to the shipped
rules (annotated example: `config/triage.toml`). Loading validates everything and raises
`TriageRulesError` naming the file and the bad entry, so a typo stops the daemon at start
instead of silently missing concerns.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from mailbot.triage.categories import (
    ENQUIRY,
    ENQUIRY_CATEGORIES,
    IDIOM,
    MARKER,
    ROUTINE,
    SAFETY_CATEGORIES,
    SAFETY_LEVELS,
)
from mailbot.triage.phrases import PhraseCompiler, TriageRulesError
from mailbot.triage.reading import plain, stem
from mailbot.triage.rules import (
    Accounting,
    Combination,
    Lower,
    Negation,
    Occasion,
    Signal,
    TriageRules,
)
from mailbot.triage.rules_schema import AccountingTable, SignalEntry, validate


def label_key(label: str) -> str:
    """A form option's label as compared: case-folded words only."""
    return " ".join(re.findall(r"[^\W_]+", label.casefold()))


_LIST_KEYS = {"phrases", "regex", "unless", "tags", "when", "near", "unless_near"}


def default_rules_path() -> Path:
    """The shipped rules: `mailbot/triage/rules.toml` inside the installed package."""
    return Path(str(resources.files("mailbot.triage").joinpath("rules.toml")))


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
        elif key in ("words", "negation", "accounting") and isinstance(value, dict):
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


def _compile(raw: dict[str, Any], source: str) -> TriageRules:
    shape = validate(raw)
    spelling: dict[str, tuple[str, ...]] = {}
    for written, meant in shape.spelling.items():
        where = f"[spelling] {written!r}"
        if not re.fullmatch(r"[a-z0-9' ]+", meant.lower().strip()):
            raise TriageRulesError(f"{where}: the replacement must be plain words")
        if not re.fullmatch(r"[a-z0-9']+", written.lower()):
            raise TriageRulesError(f"{where}: a misspelling is one word (letters, digits, ')")
        words = tuple(plain(w) for w in meant.split())
        spelling[written.lower()] = words
        if "'" in written:
            # "we'll" typed without its apostrophe is "well": list such forms on their own.
            continue
        if len(stem(plain(written))) >= 5:
            spelling.setdefault("~" + stem(plain(written)), words)

    compiler = PhraseCompiler(spelling, shape.settings.gap_words)
    for name, entries in shape.words.items():
        where = f"[words] {name}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise TriageRulesError(f"{where}: a group name is lower-case letters, digits, _")
        compiler.add_group(name, entries, where)

    neg = shape.negation

    def stems(words: list[str], key: str) -> frozenset[str]:
        return compiler.single_stems(words, f"[negation] {key}")

    negation = Negation(
        window=neg.window,
        negators=stems(neg.negators, "negators"),
        linking=stems(neg.linking_words, "linking_words"),
        coordinators=stems(neg.coordinators, "coordinators"),
        breakers=stems(neg.scope_breakers, "scope_breakers"),
        undo=compiler.pattern(neg.undone_by, "[negation] undone_by"),
        conditionals=stems(neg.not_after, "not_after"),
    )

    names: set[str] = set()
    signals = [_compile_signal(entry, i, compiler, names)
               for i, entry in enumerate(shape.signal, 1)]
    if not signals:
        raise TriageRulesError("no [[signal]] entries")
    tags_known = {t for s in signals for t in s.tags}

    combinations = []
    for i, combo in enumerate(shape.combination, 1):
        where = f"[[combination]] #{i} {combo.name!r}"
        _known_tags(combo.when, tags_known, where)
        combinations.append(Combination(
            combo.name, tuple(combo.when), combo.level, combo.within, combo.same_sentence,
            _category(combo.category, combo.level, where), combo.description))

    lowers = []
    for i, entry in enumerate(shape.lower, 1):
        where = f"[[lower]] #{i} {entry.name!r}"
        tags, near = frozenset(entry.tags), frozenset(entry.near)
        unless_near = frozenset(entry.unless_near)
        _known_tags(tags | near | unless_near, tags_known, where)
        lowers.append(Lower(entry.name, tags, near, unless_near, entry.level,
                            entry.description))

    by_name = {s.name: s for s in signals}
    occasions = []
    for i, entry in enumerate(shape.occasion, 1):
        where = f"[[occasion]] #{i} {entry.name!r}"
        for name in entry.signals:
            if name not in by_name:
                raise TriageRulesError(f"{where}: no [[signal]] is named {name!r}")
            if by_name[name].level != ROUTINE:
                raise TriageRulesError(
                    f"{where}: only a routine signal can be an occasion; {name!r} is"
                    f" {by_name[name].level}")
        for category in entry.enquiries:
            _category(category, ENQUIRY, where)
        _known_tags(entry.unless, tags_known, where)
        occasions.append(Occasion(entry.name, frozenset(entry.signals),
                                  frozenset(entry.enquiries), frozenset(entry.unless),
                                  entry.description))

    topics = {
        label_key(label): (_category(hint.category, hint.level, f"[topics] {label!r}"),
                           hint.level)
        for label, hint in shape.topics.items()
    }
    choices = {label_key(label): level for label, level in shape.urgency_choices.items()}
    return TriageRules(tuple(signals), tuple(combinations), tuple(lowers), negation,
                       topics, choices, spelling,
                       _accounting(shape.accounting, compiler, tags_known),
                       _emoji(shape.emoji), source, tuple(occasions))


def _emoji(table: dict[str, str]) -> dict[str, str]:
    for symbol, meaning in table.items():
        where = f"[emoji] {symbol!r}"
        if symbol.isascii() or len(symbol) > 4:
            raise TriageRulesError(f"{where}: the key is one emoji")
        if not re.fullmatch(r"[a-z ]+", meaning):
            raise TriageRulesError(f"{where}: the meaning must be plain lower-case words")
    # Longer sequences first, so that a symbol with its variation selector is read whole.
    return dict(sorted(table.items(), key=lambda item: -len(item[0])))


def _accounting(
    table: AccountingTable, compiler: PhraseCompiler, tags_known: set[str]
) -> Accounting:
    _known_tags(table.doubtful_tags, tags_known, "[accounting] doubtful_tags")
    def stems(entries: list[str], key: str) -> frozenset[str]:
        words = [w for entry in entries for w in entry.split()]
        return compiler.single_stems(words, f"[accounting] {key}")

    routine = stems(table.routine_words, "routine_words")
    suspicious = (stems(table.suspicious_words, "suspicious_words")
                  | compiler.literal_stems) - routine
    return Accounting(
        routine_words=routine,
        suspicious_words=frozenset(suspicious),
        suspicious_prefixes=tuple(sorted(compiler.literal_prefixes)),
        neutral_words=_neutral_vocabulary(table.neutral_vocabulary),
        pleasantry_words=stems(table.pleasantry_words, "pleasantry_words"),
        max_words=table.max_words,
        doubtful_tags=frozenset(table.doubtful_tags),
    )


def _neutral_vocabulary(size: int) -> frozenset[str]:
    """The `size` commonest English words as written (wordfreq's lists, which it ships);
    a word there that is also suspicious is judged suspicious first."""
    if not size:
        return frozenset()
    from wordfreq import top_n_list

    return frozenset(plain(w) for w in top_n_list("en", size) if w.isalpha())


def _known_tags(tags: Iterable[str], known: set[str], where: str) -> None:
    for tag in tags:
        if tag not in known:
            raise TriageRulesError(f"{where}: no [[signal]] has the tag {tag!r}")


def _category(value: str, level: str, where: str) -> str:
    if level == ENQUIRY:
        if value not in ENQUIRY_CATEGORIES:
            raise TriageRulesError(
                f"{where}: an enquiry needs a category from {', '.join(ENQUIRY_CATEGORIES)};"
                f" got {value!r}")
    elif level in (MARKER, IDIOM):
        if value:
            raise TriageRulesError(f"{where}: a {level} has no category")
    elif value and value not in SAFETY_CATEGORIES:
        raise TriageRulesError(
            f"{where}: category {value!r} is not a safety category"
            f" ({', '.join(SAFETY_CATEGORIES)}, or \"\" for a general worry)")
    return value


def _compile_signal(
    entry: SignalEntry, i: int, compiler: PhraseCompiler, names: set[str]
) -> Signal:
    where = f"[[signal]] #{i} {entry.name!r}"
    if entry.name in names:
        raise TriageRulesError(f"{where}: the name {entry.name!r} is used twice")
    names.add(entry.name)
    category = _category(entry.category, entry.level, where)
    if entry.yields_to and entry.level != ENQUIRY:
        raise TriageRulesError(f"{where}: yields_to is for enquiry signals")
    for other in entry.yields_to:
        if other not in ENQUIRY_CATEGORIES:
            raise TriageRulesError(f"{where}: yields_to {other!r} is not an enquiry category")
    if not entry.phrases and not entry.regex:
        raise TriageRulesError(f"{where}: needs phrases or regex")
    regex = None
    if entry.regex:
        for r in entry.regex:
            try:
                re.compile(r)
            except re.error as exc:
                raise TriageRulesError(f"{where} regex {r!r}: {exc}") from None
        regex = re.compile("|".join(f"(?:{r})" for r in entry.regex))
    # The words a safety rule writes alone are suspicious wherever no rule explains them.
    compiler.collecting = entry.level in SAFETY_LEVELS
    try:
        phrases = compiler.phrase_set(entry.phrases, f"{where} phrase")
    finally:
        compiler.collecting = False
    return Signal(
        name=entry.name,
        category=category,
        level=entry.level,
        tags=frozenset(entry.tags),
        phrases=phrases,
        regex=regex,
        unless=compiler.pattern(entry.unless, f"{where} unless"),
        negatable=entry.negatable if entry.negatable is not None
        else entry.level in SAFETY_LEVELS,
        description=entry.description,
        yields_to=frozenset(entry.yields_to),
    )
