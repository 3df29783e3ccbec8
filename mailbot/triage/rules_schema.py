"""The shape of a triage rules file, as pydantic models: every table and entry, the keys
each may have (any other is refused, naming it) and the values each key takes.

Validating the shape here leaves `rules_file` only what a schema cannot say: phrases
that compile, tags that exist, names used once, categories that suit the level.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mailbot.triage.phrases import TriageRulesError

SignalLevel = Literal["immediate", "urgent", "routine", "enquiry", "marker", "idiom"]
SafetyLevel = Literal["immediate", "urgent", "routine"]
TopicLevel = Literal["immediate", "urgent", "routine", "enquiry"]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


def _listed(value: object) -> object:
    """A single string is a list of one: `phrases = "x"` means `phrases = ["x"]`."""
    return [value] if isinstance(value, str) else value


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignalEntry(_Entry):
    name: Name
    level: SignalLevel
    category: str = ""
    description: str = ""
    tags: list[str] = []
    phrases: list[str] = []
    regex: list[str] = []
    unless: list[str] = []
    negatable: bool | None = None  # default: true for safety levels
    # enquiry categories this enquiry signal is only the occasion of, when one is named
    yields_to: list[str] = []

    _lists = field_validator("tags", "phrases", "regex", "unless", "yields_to",
                             mode="before")(_listed)


class CombinationEntry(_Entry):
    name: Name
    when: Annotated[list[str], Field(min_length=2)]
    level: SafetyLevel
    within: Annotated[int, Field(ge=0, strict=True)] = 0  # words between; 0 = anywhere
    same_sentence: bool = False
    category: str = ""
    description: str = ""


class LowerEntry(_Entry):
    name: Name
    tags: Annotated[list[str], Field(min_length=1)]
    near: Annotated[list[str], Field(min_length=1)]
    unless_near: list[str] = []
    level: SafetyLevel
    description: str = ""


class OccasionEntry(_Entry):
    name: Name
    signals: Annotated[list[str], Field(min_length=1)]
    enquiries: Annotated[list[str], Field(min_length=1)]
    unless: list[str] = []  # tags
    description: str = ""


class Settings(_Entry):
    gap_words: Annotated[int, Field(ge=1, le=8, strict=True)] = 3


class NegationTable(_Entry):
    window: Annotated[int, Field(ge=0, le=10, strict=True)] = 4
    negators: list[str] = []
    linking_words: list[str] = []
    coordinators: list[str] = []
    scope_breakers: list[str] = []
    undone_by: list[str] = []
    not_after: list[str] = []


class AccountingTable(_Entry):
    max_words: Annotated[int, Field(ge=1, strict=True)] = 80
    neutral_vocabulary: Annotated[int, Field(ge=0, strict=True)] = 50_000
    routine_words: list[str] = []
    suspicious_words: list[str] = []
    pleasantry_words: list[str] = []
    doubtful_tags: list[str] = []


class TopicHint(_Entry):
    category: str
    level: TopicLevel


class RulesFile(_Entry):
    description: str = ""
    settings: Settings = Settings()
    spelling: dict[str, str] = {}
    emoji: dict[str, str] = {}
    words: dict[str, list[str]] = {}
    negation: NegationTable = NegationTable()
    accounting: AccountingTable = AccountingTable()
    topics: dict[str, TopicHint] = {}
    urgency_choices: dict[str, SafetyLevel] = {}
    signal: list[SignalEntry] = []
    combination: list[CombinationEntry] = []
    lower: list[LowerEntry] = []
    occasion: list[OccasionEntry] = []


_TABLES = {"signal": "[[signal]]", "combination": "[[combination]]", "lower": "[[lower]]",
           "occasion": "[[occasion]]"}


def validate(raw: dict[str, object]) -> RulesFile:
    """The file's contents as models; a `TriageRulesError` names the first bad entry and
    key the way the file's header documents them ("[[signal]] #3 'self_harm': ...")."""
    try:
        return RulesFile.model_validate(raw)
    except ValidationError as exc:
        raise TriageRulesError(_describe(exc.errors()[0], raw)) from None


def _describe(error: dict, raw: dict[str, object]) -> str:  # type: ignore[type-arg]
    loc = list(error["loc"])
    where, key = "top level", ""
    if loc and loc[0] in _TABLES and len(loc) > 1 and isinstance(loc[1], int):
        table, index = str(loc[0]), int(loc[1])
        entries = raw.get(table)
        entry = entries[index] if isinstance(entries, list) and index < len(entries) else {}
        name = entry.get("name", "?") if isinstance(entry, dict) else "?"
        where, loc = f"{_TABLES[table]} #{index + 1} {name!r}", loc[2:]
    elif loc and len(loc) > 1 and loc[0] in ("topics", "urgency_choices", "spelling", "emoji",
                                             "words"):
        where, loc = f"[{loc[0]}] {loc[1]!r}", loc[2:]
    elif loc and loc[0] in ("settings", "negation", "accounting"):
        where, loc = f"[{loc[0]}]", loc[1:]
    key = ".".join(str(part) for part in loc)
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key {key!r}"
    if error["type"] == "literal_error":
        allowed = error.get("ctx", {}).get("expected", "")
        return f"{where}: {key} {error['input']!r} is not one of {allowed}"
    if error["type"] == "missing":
        return f"{where}: {key} is missing"
    return f"{where}: {key}: {error['msg']}" if key else f"{where}: {error['msg']}"
