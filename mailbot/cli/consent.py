"""`mailbot consent`: the consent register, as a named member of staff records it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from mailbot.cli.context import Context, by_option, pass_context


@click.group("consent")
def consent_group() -> None:
    """the consent register"""


def _recording(function: Callable[..., int]) -> Callable[..., int]:
    """The options every recording verb takes: who, with whom, by whom."""
    for option in reversed((
        click.option("--prisoner", required=True, help="prisoner number, A1234BC"),
        click.option("--contact", required=True,
                     help="email address, or 'Name|phone' without one"),
        by_option("the member of staff recording it"),
        click.option("--note", default=""),
    )):
        function = option(function)
    return function


@consent_group.command("grant")
@_recording
@click.option("--scope", required=True, type=click.Choice(("none", "wellbeing", "full")))
@pass_context
def grant(context: Context, scope: str, **common: str) -> int:
    """record what the prisoner consented to share with a contact"""
    from mailbot.replies import consent

    with context.sessions() as session:
        consent.grant(session, scope=scope, **common)
        session.commit()
    print(f"consent '{scope}' recorded")
    return 0


@consent_group.command("withdraw")
@_recording
@pass_context
def withdraw(context: Context, **common: str) -> int:
    """withdraw consent (wins from this moment)"""
    from mailbot.replies import consent

    with context.sessions() as session:
        count = consent.withdraw(session, **common)
        session.commit()
    print(f"withdrawn ({count} record(s))")
    return 0


@consent_group.command("restrict")
@_recording
@pass_context
def restrict(context: Context, **common: str) -> int:
    """record a restricted contact (restraining order, ...)"""
    from mailbot.replies import consent

    with context.sessions() as session:
        consent.restrict(session, **common)
        session.commit()
    print("restricted contact recorded")
    return 0


@consent_group.command("list")
@click.option("--prisoner")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def listing(context: Context, prisoner: str | None, as_json: bool) -> int:
    """list the register"""
    from mailbot.replies import consent

    with context.sessions() as session:
        rows = [_consent_row(r) for r in consent.listing(session, prisoner)]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        withdrawn = row["withdrawn_at"]
        state = f"withdrawn {withdrawn[:16]}" if withdrawn else "in force"
        print(f"{row['id']:>5}  {row['prisoner']}  {row['contact']:40} {row['scope']:10} "
              f"by {row['recorded_by']} {row['recorded_at'][:16]}  {state}")
    return 0


COMMANDS = (consent_group,)


def _consent_row(record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "prisoner": record.prisoner_number,
        "contact": record.contact_key,
        "scope": record.scope,
        "recorded_by": record.recorded_by,
        "recorded_at": record.recorded_at.isoformat(),
        "note": record.note,
        "withdrawn_at": record.withdrawn_at.isoformat() if record.withdrawn_at else None,
        "withdrawn_by": record.withdrawn_by,
    }
