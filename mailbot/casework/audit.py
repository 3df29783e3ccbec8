"""The audit trail: one row per thing a person or mailbot did to a concern, draft or
consent record, with who and when. Rows are only ever added."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from mailbot.db.models import AuditEvent, utcnow

MAILBOT = "mailbot"


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
    event = AuditEvent(at=utcnow(), actor=actor, action=action, contact_id=contact_id,
                       draft_id=draft_id, detail=detail or {})
    if contact is not None:
        event.contact = contact
    if draft is not None:
        event.draft = draft
    session.add(event)
    return event
