"""The audit trail: one row per thing a person or mailbot did to a concern, draft or
consent record, with who and when. Rows are only ever added.

Who is the signed-in member of staff for the web console's actions. A command-line verb
is told who with `--by NAME`, which anyone at the shell can fill with any name, so an
event recorded under that name while the verb runs says so: "Officer Smith (--by on the
command line)", never the bare name a console sign-in records (`typed_by`).
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

from sqlalchemy.orm import Session

from mailbot.db.models import AuditEvent, utcnow

MAILBOT = "mailbot"
TYPED = " (--by on the command line)"
ACTOR_LENGTH = 200  # AuditEvent.actor
# The --by NAME of the command-line verb running now, if any.
_typed_by: ContextVar[str | None] = ContextVar("typed_by", default=None)


def typed_by(name: str) -> Token[str | None]:
    """Events recorded under NAME from now until `forget_typed` say it was typed."""
    return _typed_by.set(name.strip() or None)


def forget_typed(token: Token[str | None]) -> None:
    _typed_by.reset(token)


def _actor(actor: str) -> str:
    typed = _typed_by.get()
    if typed is None or actor.strip() != typed:
        return actor
    return actor.strip()[:ACTOR_LENGTH - len(TYPED)] + TYPED


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    contact_id: int | None = None,
    draft_id: int | None = None,
    detail: dict[str, Any] | None = None,
    contact: Any = None,
    draft: Any = None,
) -> AuditEvent:
    """Add one event. Pass `contact`/`draft` objects when they may not be flushed yet."""
    event = AuditEvent(at=utcnow(), actor=_actor(actor), action=action, contact_id=contact_id,
                       draft_id=draft_id, detail=detail or {})
    if contact is not None:
        event.contact = contact
    if draft is not None:
        event.draft = draft
    session.add(event)
    return event
