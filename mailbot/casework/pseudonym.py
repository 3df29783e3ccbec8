"""Pseudonyms: decides the one stable, non-reversible token for "this person about this
prisoner", so repeat contacts can still be counted after retention removes who they were.

The token is an HMAC keyed by a random secret made once per database; without the secret
it cannot be reversed or recomputed from a guessed address.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy.orm import Session

from mailbot.db.models import InstallSecret
from mailbot.replies.consent import ConsentError, contact_key


def _secret(session: Session) -> bytes:
    row = session.get(InstallSecret, 1)
    if row is None:
        row = InstallSecret(id=1, secret=secrets.token_hex(32))
        session.add(row)
        session.flush()
    return bytes.fromhex(row.secret)


def prisoner_token(number: str, name: str) -> str | None:
    number = number.strip().upper()
    if number:
        return number
    folded = " ".join(name.lower().split())
    return f"name:{folded}" if folded else None


def person_hash(
    session: Session, *, email: str, name: str, phone: str, prisoner_number: str,
    prisoner_name: str,
) -> str | None:
    try:
        person = contact_key(email, name, phone)
    except ConsentError:
        return None
    prisoner = prisoner_token(prisoner_number, prisoner_name)
    if prisoner is None:
        return None
    message = f"{person}|{prisoner}".encode()
    return hmac.new(_secret(session), message, hashlib.sha256).hexdigest()
