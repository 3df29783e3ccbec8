"""Project errors: each says what went wrong and what to check, so the CLI can print it."""


class MailbotError(Exception):
    """Base class: the CLI prints these as one clear line and exits non-zero."""

    exit_code = 1


class ConfigError(MailbotError):
    """The configuration file is missing, unreadable or has a bad key."""

    exit_code = 2


class MailboxError(MailbotError):
    """The IMAP mailbox could not be reached or used (or, for `SignInError`, the mail
    server could not be signed in to)."""

    exit_code = 3


class MailboxLoginError(MailboxError):
    """The IMAP server refused our credentials: retrying will not help."""


class SignInError(MailboxLoginError):
    """OAuth2 sign-in failed, to the mailbox or the mail server: the token endpoint
    refused us (or could not be reached), or the server refused the token. The message
    says, in one line, what to fix; it never holds a secret or a token."""


class DatabaseError(MailbotError):
    """The database could not be reached or migrated."""

    exit_code = 4


class RefusedError(MailbotError):
    """A member of staff's request was refused (consent changed since drafting, places
    left to fill, no such concern...): the message says what to do instead."""

    exit_code = 5


def describe(exc: BaseException | None, limit: int = 500) -> str:
    """An exception for a log line or a stored error: its class, then its message, cut to
    `limit` characters ("TimeoutError: timed out"); "None" when there is none."""
    if exc is None:
        return "None"
    text = str(exc)
    described = f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
    return described[:limit]
