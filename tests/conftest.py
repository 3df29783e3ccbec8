"""Fixtures that start real servers: Dovecot (IMAP), aiosmtpd (SMTP) and PostgreSQL
databases, each on loopback and thrown away after the test; for OAuth2, a token provider
over HTTPS, a Dovecot that asks it about tokens and an SMTP server that takes only them."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from mailbot import config as config_module
from mailbot.devtools.devservers import (
    POSTGRES_ADMIN_URL,
    Dovecot,
    SmtpSink,
    dovecot_available,
    throwaway_postgres_database,
    write_config,
)
from mailbot.devtools.tokenserver import OAuth2SmtpSink, TokenServer

# CI draws the same examples on every run, so a red build means a change broke something;
# runs on a developer's machine go on exploring new examples (and keep any they find).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parent.parent
# The repository's own test data: sample messages and real-world automatic mail
# (each directory's README says where it comes from and its licence).
DATA = REPO / "tests" / "data"
SAMPLES = DATA / "samples"
BOUNCES = DATA / "realworld" / "bounces"


def sample_bytes(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if not dovecot_available():
        pytest.skip("Dovecot is not installed: run ./scripts/test, which installs it")
    # Not under pytest's tmp_path: its parents are private to us, and Dovecot's own
    # unprivileged processes must be able to reach the user database and mail store.
    server = Dovecot.start()
    yield server
    server.destroy()


@pytest.fixture
def ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A certificate authority for this test only, trusted by urllib, msal and google-auth."""
    import trustme

    authority = trustme.CA()
    bundle = tmp_path / "test-ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    return authority


@pytest.fixture
def provider(ca) -> Iterator[TokenServer]:  # type: ignore[no-untyped-def]
    """The OAuth2 provider (mailbot/devtools/tokenserver.py), over HTTP and HTTPS; no token
    mailbot cached for another test's provider is kept."""
    from mailbot.mailbox import signin

    signin.forget_tokens()
    server = TokenServer(ca=ca).start()
    yield server
    server.stop()
    signin.forget_tokens()


@pytest.fixture
def oauth2_dovecot(provider: TokenServer) -> Iterator[Dovecot]:
    """Dovecot that also takes XOAUTH2 and OAUTHBEARER, asking `provider` about each token."""
    if not dovecot_available():
        pytest.skip("Dovecot is not installed: run ./scripts/test, which installs it")
    server = Dovecot.start(oauth2_introspection_url=provider.introspection_url)
    yield server
    server.destroy()


@pytest.fixture
def oauth2_smtp(provider: TokenServer) -> Iterator[OAuth2SmtpSink]:
    """An SMTP server that takes only AUTH XOAUTH2 with a token `provider` issued."""
    for chatty in ("mail.log", "aiosmtpd"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    sink = OAuth2SmtpSink.start_for(provider)
    yield sink
    sink.stop()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    # aiosmtpd logs every connection at INFO ("EOF received", "connection lost"):
    # chatter that buried the tests' own output.
    for chatty in ("mail.log", "aiosmtpd"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    sink = SmtpSink.start()
    yield sink
    sink.stop()


def _postgres_database() -> Iterator[str]:
    try:
        import psycopg

        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 ({exc.__class__.__name__})")
    with throwaway_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mailbot.sqlite3'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mailbot.sqlite3'}"


@pytest.fixture
def make_config(tmp_path: Path, dovecot: Dovecot):  # type: ignore[no-untyped-def]
    """Write a config file pointing at the test Dovecot; returns (path, Config)."""

    def make(  # type: ignore[no-untyped-def]
        database_url: str | None = None,
        smtp_port: int = 2525,
        extra: str = "",
        mailbox_extra: str = "",
    ):
        path = write_config(tmp_path, dovecot, smtp_port, database_url=database_url,
                            state_dir=tmp_path / "state", extra=extra,
                            mailbox_extra=mailbox_extra)
        return path, config_module.load(path)

    return make


@pytest.fixture
def offline_config(tmp_path: Path) -> config_module.Config:
    """A valid Config for pure tests: nothing it names is contacted."""
    return config_module.from_dict(
        {
            "prison": {"name": "HMP Exampletown"},
            "mailbox": {"host": "localhost", "username": "u", "password_env": "UNUSED"},
            "smtp": {"host": "localhost", "from_address": "safercustody@prison.example"},
            "state": {"directory": str(tmp_path)},
        }
    )
