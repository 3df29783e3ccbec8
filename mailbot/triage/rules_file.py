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
    SAFETY_CATEGORIES,
    SAFETY_LEVELS,
    SIGNAL_LEVELS,
)
from mailbot.triage.phrases import PhraseCompiler, TriageRulesError
from mailbot.triage.reading import plain, stem
from mailbot.triage.rules import (
    Accounting,
    Combination,
    Lower,
    Negation,
    Signal,
    TriageRules,
)

DEFAULT_GAP_WORDS = 3


def label_key(label: str) -> str:
    """A form option's label as compared: case-folded words only."""
    return " ".join(re.findall(r"[^\W_]+", label.casefold()))


_TOP_KEYS = {
    "extends", "description", "settings", "spelling", "words", "negation",
    "topics", "urgency_choices", "signal", "combination", "lower", "accounting", "emoji",
}
_ACCOUNTING_KEYS = {
    "max_words", "routine_words", "suspicious_words", "neutral_vocabulary", "pleasantry_words",
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
        words = tuple(plain(w) for w in meant.split())
        spelling[written.lower()] = words
        if "'" in written:
            # "we'll" typed without its apostrophe is "well": list such forms on their own.
            continue
        if len(stem(plain(written))) >= 5:
            spelling.setdefault("~" + stem(plain(written)), words)

    compiler = PhraseCompiler(spelling, gap_words)
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
        undo=compiler.pattern(words("undone_by"), "[negation] undone_by"),
        conditionals=stems("not_after"),
    )

    signals = []
    names: set[str] = set()
    raw_signals = raw.get("signal", [])
    if not isinstance(raw_signals, list):
        raise TriageRulesError("[[signal]] must be an array of tables")
    for i, entry in enumerate(raw_signals, 1):
        signals.append(_compile_signal(entry, i, compiler, names))
    compiler.collecting = False
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
        topics[label_key(label)] = (_category(value.get("category"), level, where), level)

    choices: dict[str, str] = {}
    for label, level in _table(raw, "urgency_choices").items():
        where = f"[urgency_choices] {label!r}"
        choices[label_key(label)] = _level(level, SAFETY_LEVELS, where)

    return TriageRules(tuple(signals), tuple(combinations), tuple(lowers), negation,
                       topics, choices, spelling, _accounting(raw, compiler),
                       _emoji(raw), source)


def _emoji(raw: dict[str, Any]) -> dict[str, str]:
    emoji = {}
    for symbol, meaning in _table(raw, "emoji").items():
        where = f"[emoji] {symbol!r}"
        if symbol.isascii() or len(symbol) > 4:
            raise TriageRulesError(f"{where}: the key is one emoji")
        if not isinstance(meaning, str) or not re.fullmatch(r"[a-z ]+", meaning):
            raise TriageRulesError(f"{where}: the meaning must be plain lower-case words")
        emoji[symbol] = meaning
    # Longer sequences first, so that a symbol with its variation selector is read whole.
    return dict(sorted(emoji.items(), key=lambda item: -len(item[0])))


def _accounting(raw: dict[str, Any], compiler: PhraseCompiler) -> Accounting:
    table = _table(raw, "accounting")
    _unknown(table, _ACCOUNTING_KEYS, "[accounting]")
    max_words = table.get("max_words", 80)
    if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1:
        raise TriageRulesError("[accounting] max_words must be a whole number, 1 or more")
    neutral_size = table.get("neutral_vocabulary", 50_000)
    if isinstance(neutral_size, bool) or not isinstance(neutral_size, int) or neutral_size < 0:
        raise TriageRulesError("[accounting] neutral_vocabulary must be a whole number (0 = none)")

    def stems(key: str) -> frozenset[str]:
        where = f"[accounting] {key}"
        words = [w for entry in _strings(table.get(key, []), where) for w in entry.split()]
        return compiler.single_stems(words, where)

    routine = stems("routine_words")
    suspicious = (stems("suspicious_words") | compiler.literal_stems) - routine
    return Accounting(
        routine_words=routine,
        suspicious_words=frozenset(suspicious),
        suspicious_prefixes=tuple(sorted(compiler.literal_prefixes)),
        neutral_words=_neutral_vocabulary(neutral_size),
        pleasantry_words=stems("pleasantry_words"),
        max_words=max_words,
    )


def _neutral_vocabulary(size: int) -> frozenset[str]:
    """The `size` commonest English words as written (wordfreq's lists, which it ships);
    a word there that is also suspicious is judged suspicious first."""
    if not size:
        return frozenset()
    from wordfreq import top_n_list

    return frozenset(plain(w) for w in top_n_list("en", size) if w.isalpha())


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
    elif level in (MARKER, IDIOM):
        if value:
            raise TriageRulesError(f"{where}: a {level} has no category")
    elif value and value not in SAFETY_CATEGORIES:
        raise TriageRulesError(
            f"{where}: category {value!r} is not a safety category"
            f" ({', '.join(SAFETY_CATEGORIES)}, or \"\" for a general worry)")
    return str(value)


def _safety_phrases(
    compiler: PhraseCompiler, phrases: list[str], level: str, where: str
) -> re.Pattern[str] | None:
    compiler.collecting = level in SAFETY_LEVELS
    try:
        return compiler.pattern(phrases, f"{where} phrase")
    finally:
        compiler.collecting = False


def _compile_signal(entry: Any, i: int, compiler: PhraseCompiler, names: set[str]) -> Signal:
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
        compiler.collecting = False
        return compiler.pattern(items, f"{where} {what}")

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
        phrases=_safety_phrases(compiler, phrases, level, where),
        regex=regex,
        unless=join(_strings(entry.get("unless", []), f"{where} unless"), "unless"),
        negatable=negatable,
        description=str(entry.get("description", "")),
    )

