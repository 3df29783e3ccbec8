"""Staff accounts for the web console: decides who may sign in, with which role.

Local accounts with argon2id password hashes (`mailbot users add|disable|reset|role|list`,
and the console's Users page, which calls these same functions).
Roles nest: an `officer` works the queue, drafts, casework, consent, quarantine and
health; a `manager` also sees the audit trail (and, next, reports and template
approval); an `admin` also keeps the accounts (and, next, templates and settings).
Ten wrong passwords in a row (`[web] lockout_after`) lock an account for
`[web] lockout_minutes`, counted in the database so that a restart does not reset it;
a right password while locked is refused too. Every change to an account, every
sign-in and every lockout is in the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.casework.audit import record_event
from mailbot.config import WebSettings
from mailbot.db.models import User, utcnow
from mailbot.errors import RefusedError


class Role(StrEnum):
    OFFICER = "officer"
    MANAGER = "manager"
    ADMIN = "admin"


ROLES = tuple(Role)
_LEVEL = {Role.OFFICER: 1, Role.MANAGER: 2, Role.ADMIN: 3}
MIN_PASSWORD_LENGTH = 12
# argon2-cffi's defaults are RFC 9106's second recommended option, argon2id.
_HASHER = PasswordHasher()
# Verified against when the name is unknown, so that a wrong name costs as long as a
# wrong password and the timing does not tell which names exist.
_DUMMY_HASH = _HASHER.hash("not a password anyone has")


class AccountError(RefusedError, ValueError):
    """An account change that cannot be made as asked; says what to do."""


def allows(role: str, needed: str) -> bool:
    """Whether ROLE may do what NEEDED may (roles nest: admin > manager > officer)."""
    return _LEVEL.get(Role(role) if role in ROLES else None, 0) >= _LEVEL[Role(needed)]


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def find(session: Session, name: str) -> User | None:
    return session.execute(select(User).where(User.name == name)).scalar_one_or_none()


def _existing(session: Session, name: str) -> User:
    user = find(session, name)
    if user is None:
        raise AccountError(f"no user {name!r}: mailbot users list shows who there is")
    return user


def add(session: Session, name: str, role: str, password: str, *, by: str) -> User:
    name = name.strip()
    if not name or len(name) > 200:
        raise AccountError("a user needs a name of 1 to 200 characters")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if find(session, name) is not None:
        raise AccountError(f"user {name!r} already exists; mailbot users reset {name} "
                           "gives them a new password")
    _check_password(password)
    now = utcnow()
    user = User(name=name, role=role, password_hash=_HASHER.hash(password), created_at=now,
                created_by=by, password_changed_at=now, failed_logins=0)
    session.add(user)
    record_event(session, actor=by, action="user_added", detail={"user": name, "role": role})
    return user


def _keep_an_admin(session: Session, user: User, doing: str) -> None:
    """Refuse to leave the console with no enabled admin (no one could then keep the
    accounts or the templates from the browser)."""
    if user.role != Role.ADMIN or user.disabled_at is not None:
        return
    others = session.execute(select(User).where(User.role == Role.ADMIN)
                             .where(User.disabled_at.is_(None))
                             .where(User.id != user.id)).first()
    if others is None:
        raise AccountError(f"{user.name!r} is the only enabled admin: make someone else "
                           f"an admin before you {doing}")


def disable(session: Session, name: str, *, by: str) -> User:
    user = _existing(session, name)
    if user.disabled_at is not None:
        raise AccountError(f"user {name!r} is already disabled")
    _keep_an_admin(session, user, "disable this account")
    user.disabled_at = utcnow()
    record_event(session, actor=by, action="user_disabled", detail={"user": name})
    return user


def reset(session: Session, name: str, password: str, *, by: str) -> User:
    """A new password; the account is enabled and unlocked, and its sessions end."""
    user = _existing(session, name)
    if user.source != "local":
        raise AccountError(f"{name!r} signs in with Entra ID and has no password here: "
                           "their access is their Entra groups (and disabling here)")
    _check_password(password)
    user.password_hash, user.password_changed_at = _HASHER.hash(password), utcnow()
    user.disabled_at, user.failed_logins, user.locked_until = None, 0, None
    record_event(session, actor=by, action="user_password_reset", detail={"user": name})
    return user


def change_role(session: Session, name: str, role: str, *, by: str) -> User:
    """A new role; the person's next request is made with it."""
    user = _existing(session, name)
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if user.role == role:
        raise AccountError(f"user {name!r} is already {role}")
    if role != Role.ADMIN:
        _keep_an_admin(session, user, "change this account's role")
    before, user.role = user.role, role
    record_event(session, actor=by, action="user_role_changed",
                 detail={"user": name, "from": before, "to": role})
    return user


def listing(session: Session) -> list[User]:
    return list(session.execute(select(User).order_by(User.name)).scalars())


@dataclass(frozen=True)
class SignIn:
    """The outcome of one sign-in attempt: the user, or why not (said to the person as
    one message whatever the reason, so that it does not tell which names exist)."""

    user: User | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.user is not None


def authenticate(session: Session, settings: WebSettings, name: str, password: str,
                 now: datetime | None = None) -> SignIn:
    """Check NAME's PASSWORD, counting wrong ones; the caller commits."""
    now = now or utcnow()
    user = find(session, name.strip())
    if user is None:
        _verify(_DUMMY_HASH, password)
        return SignIn(None, "unknown name")
    if user.locked_until is not None and user.locked_until > now:
        return SignIn(None, "locked")
    if user.disabled_at is not None:
        _verify(_DUMMY_HASH, password)
        return SignIn(None, "disabled")
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        if settings.lockout_after and user.failed_logins >= settings.lockout_after:
            user.locked_until = now + timedelta(minutes=settings.lockout_minutes)
            user.failed_logins = 0
            record_event(session, actor=user.name, action="user_locked_out",
                         detail={"until": user.locked_until.isoformat()})
        return SignIn(None, "wrong password")
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    record_event(session, actor=user.name, action="user_signed_in")
    return SignIn(user)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
