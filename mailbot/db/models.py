"""The communications log's tables, as SQLAlchemy 2.x typed models.

`StoredMessage` keeps every message taken from the inbox (raw bytes included), whatever it
turned out to be; `Contact` is one entry of the safer custody communications log.
The schema itself is owned by the Alembic migrations in `mailbot/db/migrations`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mailbot.parsers.contact import Disposition
from mailbot.triage.categories import Urgency

__all__ = ["Disposition"]  # defined with the other shared values; its home was here


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend: stored as UTC, returned aware.

    SQLite has no timezone type and would hand back naive values."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class StoredMessage(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The crash-safety key: a message seen again after a crash has the same bytes.
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    mailbox_folder: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)  # IMAP: 32-bit unsigned
    uid: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime]  # IMAP INTERNALDATE, else the Date header
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)
    size: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    recognition_reasons: Mapped[list[str]] = mapped_column(default=list)
    disposition: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    sender: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    # None only when the message was too large to hold: it stays in the mailbox.
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))

    contact: Mapped[Contact | None] = relationship(back_populates="message", uselist=False)
    # Both self-references are view-only, and set through their ids: a self-referential
    # relationship that takes part in a flush makes SQLAlchemy insert that table's new
    # rows one statement each, instead of in batches.
    duplicate_of: Mapped[StoredMessage | None] = relationship(remote_side=[id], viewonly=True)

    @property
    def destination(self) -> str:
        return "quarantine" if self.disposition == Disposition.QUARANTINED else "processed"


class Contact(Base):
    """One contact from a family member or significant other: a log entry."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(index=True)
    logged_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(32), default="new")
    related_contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))

    submitter_name: Mapped[str] = mapped_column(Text, default="")
    submitter_email: Mapped[str] = mapped_column(String(320), default="", index=True)
    submitter_email_valid: Mapped[bool] = mapped_column(Boolean, default=False)
    submitter_phone: Mapped[str] = mapped_column(String(64), default="")
    relationship_to_prisoner: Mapped[str] = mapped_column(Text, default="")
    contact_preference: Mapped[str] = mapped_column(Text, default="")

    prisoner_name: Mapped[str] = mapped_column(Text, default="")
    prisoner_number: Mapped[str] = mapped_column(String(16), default="", index=True)
    prisoner_number_as_typed: Mapped[str] = mapped_column(Text, default="")
    prisoner_dob: Mapped[date | None] = mapped_column(Date)
    prisoner_dob_as_typed: Mapped[str] = mapped_column(Text, default="")
    establishment: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(Text, default="")

    subject: Mapped[str] = mapped_column(Text, default="")
    topic: Mapped[str] = mapped_column(Text, default="")
    urgency_choice: Mapped[str] = mapped_column(Text, default="")
    concern_text: Mapped[str] = mapped_column(Text, default="")
    consent_tell_prisoner: Mapped[str] = mapped_column(Text, default="")
    consent_understood: Mapped[str] = mapped_column(Text, default="")
    portal_reference: Mapped[str] = mapped_column(String(64), default="")
    submitted_at: Mapped[datetime | None]
    flags: Mapped[list[str]] = mapped_column(default=list)
    problems: Mapped[list[str]] = mapped_column(default=list)

    # Triage: filled when the contact is logged (mailbot/triage.py).
    is_safer_custody: Mapped[bool] = mapped_column(Boolean, default=True)
    categories: Mapped[list[str]] = mapped_column(default=list)
    urgency: Mapped[str] = mapped_column(String(32), default=Urgency.URGENT, index=True)
    triage_reasons: Mapped[list[str]] = mapped_column(default=list)
    # Sentences triage could not account for as routine: shown to staff, and any of them
    # ruled out an automatic reply.
    unaccounted: Mapped[list[str]] = mapped_column(default=list)
    language: Mapped[str] = mapped_column(String(8), default="en")  # ISO 639-1

    # The first response to the family: an approved draft sent, or one sent by staff.
    responded_at: Mapped[datetime | None]
    responded_by: Mapped[str | None] = mapped_column(String(200))
    # Closed only by a person, never automatically.
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str | None] = mapped_column(Text)
    # Set by retention: personal fields removed, counts kept.
    anonymised_at: Mapped[datetime | None]
    # A keyed hash of (person, prisoner): lets the reports count repeat contacts after
    # retention has removed who they were. Not reversible without the database's secret.
    person_hash: Mapped[str | None] = mapped_column(String(64), index=True)

    message: Mapped[StoredMessage] = relationship(back_populates="contact")
    drafts: Mapped[list[Draft]] = relationship(back_populates="contact", order_by="Draft.id")
    alerts: Mapped[list[ContactAlert]] = relationship(
        back_populates="contact", order_by="ContactAlert.id"
    )
    actions: Mapped[list[ConcernAction]] = relationship(
        back_populates="contact", order_by="ConcernAction.id"
    )
    emails: Mapped[list[OutboxEmail]] = relationship(
        back_populates="contact", order_by="OutboxEmail.id"
    )
    related_contact: Mapped[Contact | None] = relationship(remote_side=[id], viewonly=True)

    # The staff console's queue: concerns with no response yet, oldest clock first.
    __table_args__ = (Index("ix_contacts_queue", "responded_at", "status", "received_at"),)


class ReferenceCounter(Base):
    """The last reference number handed out per year (SC-2026-00042)."""

    __tablename__ = "reference_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class MailboxState(Base):
    """Per folder: the UIDVALIDITY we last saw, and how the last poll went."""

    __tablename__ = "mailbox_state"

    folder: Mapped[str] = mapped_column(String(255), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)  # IMAP: 32-bit unsigned
    # Folders mailbot reads without emptying (Sent): the highest UID already looked at.
    last_uid: Mapped[int | None] = mapped_column(BigInteger)
    last_poll_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]


class OutboxEmail(Base):
    """One email mailbot sends: recorded, with its Message-ID, before it is sent."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    # Automatic replies to families count towards the per-recipient rate limit.
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(32), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    sent_at: Mapped[datetime | None]
    bounced_at: Mapped[datetime | None]
    copy_saved: Mapped[bool] = mapped_column(Boolean, default=False)

    contact: Mapped[Contact | None] = relationship(back_populates="emails")


class ConsentRecord(Base):
    """What a prisoner has consented to share with one contact, or that the contact is
    restricted. The newest record in force for a (prisoner, contact) pair decides."""

    __tablename__ = "consent"

    id: Mapped[int] = mapped_column(primary_key=True)
    prisoner_number: Mapped[str] = mapped_column(String(16), index=True)
    contact_key: Mapped[str] = mapped_column(String(400), index=True)
    scope: Mapped[str] = mapped_column(String(16))  # none | wellbeing | full | restricted
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by: Mapped[str | None] = mapped_column(String(200))


class Draft(Base):
    """An acknowledgement waiting for a person: nothing in it is sent until approved."""

    __tablename__ = "drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    template: Mapped[str] = mapped_column(String(64))
    consent_scope: Mapped[str] = mapped_column(String(16))  # what was in force when drafted
    status: Mapped[str] = mapped_column(String(32), index=True)
    recipient: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
    reject_reason: Mapped[str | None] = mapped_column(Text)
    sent_text: Mapped[str | None] = mapped_column(Text)  # as actually sent
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    # The copy placed in the mailbox's Drafts folder, for staff who approve in Outlook.
    mailbox_copy: Mapped[str] = mapped_column(String(16), default="none")  # none|placed|removed

    contact: Mapped[Contact] = relationship(back_populates="drafts")
    # The approved draft's email: whether it has reached the family yet.
    email: Mapped[OutboxEmail | None] = relationship(viewonly=True)


class InstallSecret(Base):
    """A random key made once per database, for pseudonyms (`Contact.person_hash`)."""

    __tablename__ = "install_secret"

    id: Mapped[int] = mapped_column(primary_key=True)
    secret: Mapped[str] = mapped_column(String(64))


class ContactAlert(Base):
    """An alert already sent about a contact (deadline warning, breach, persistent
    contact), so that it is never sent twice, whatever restarts in between."""

    __tablename__ = "contact_alerts"
    __table_args__ = (UniqueConstraint("contact_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # warn_24h | warn_6h | breach | persistent
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent: Mapped[bool] = mapped_column(Boolean, default=True)  # False: folded into a later one
    person_key: Mapped[str | None] = mapped_column(String(400), index=True)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))

    contact: Mapped[Contact] = relationship(back_populates="alerts")


class ConcernAction(Base):
    """What staff did for a concern: the communications log's 'actions' columns."""

    __tablename__ = "concern_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    # welfare_check | referral | referral_follow_up | acct_opened | acct_reviewed |
    # csip_referral | nomis_updated | call_back | outcome
    kind: Mapped[str] = mapped_column(String(32), index=True)
    # For referrals and their follow-ups: healthcare | mental_health | chaplaincy |
    # family_services | security | omu | substance_misuse
    department: Mapped[str | None] = mapped_column(String(32))
    happened_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(Text, default="")

    contact: Mapped[Contact] = relationship(back_populates="actions")


class AuditEvent(Base):
    """Who did what, and when: every draft, consent and response event."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("drafts.id"))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    contact: Mapped[Contact | None] = relationship()
    draft: Mapped[Draft | None] = relationship()


class User(Base):
    """A member of staff who signs in to the web console (`mailbot users`): a role, an
    argon2id password hash, and the count of wrong passwords that locks the account."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # officer | manager | admin
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    disabled_at: Mapped[datetime | None]
    # A session signed in before this is ended (a reset password signs everyone out).
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    # "local" (a password here) or "entra" (signed in by OpenID Connect, mailbot/web/oidc.py:
    # made at the first sign-in, its role taken from the groups at every one).
    source: Mapped[str] = mapped_column(String(16), default="local", server_default="local")
    # The person at the provider ("entra:" and the oid, or the issuer and sub): never reused.
    external_id: Mapped[str | None] = mapped_column(String(300), unique=True, index=True)


class TemplateVersion(Base):
    """A reply or alert template's wording as an admin saved it in the console: one
    numbered version of all its parts (mailbot/replies/versions.py). Number 0 is never
    stored: it stands for the files under templates/ (or the override directory)."""

    __tablename__ = "template_versions"
    __table_args__ = (UniqueConstraint("kind", "name", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "templates" (replies) | "alerts"
    name: Mapped[str] = mapped_column(String(100))
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per template
    subject: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    based_on: Mapped[int] = mapped_column(Integer, default=0)  # the live number then


class TemplateApproval(Base):
    """A manager making one version of a template live (number 0: the shipped files).
    The newest approval of a template is its live version; a rollback is an approval of
    an earlier version. Rows are only ever added."""

    __tablename__ = "template_approvals"
    __table_args__ = (Index("ix_template_approvals_template", "kind", "name", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    number: Mapped[int] = mapped_column(Integer)
    approved_by: Mapped[str] = mapped_column(String(200))
    approved_at: Mapped[datetime] = mapped_column(default=utcnow)
    rollback: Mapped[bool] = mapped_column(Boolean, default=False)
