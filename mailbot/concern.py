"""Moved to `mailbot.parsers.contact`. This name stays only until `mailbot.triage` and
tests/test_triage.py (reworked in parallel) import from there; then it goes."""

from mailbot.parsers.contact import (  # noqa: F401
    Disposition,
    Flag,
    FormParseError,
    ParsedContact,
    Prisoner,
    Source,
    Submitter,
)
