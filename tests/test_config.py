"""Configuration is validated at start, with errors that name the bad key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mailbot import config as config_module
from mailbot.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

MINIMAL = {
    "prison": {"name": "HMP Exampletown"},
    "mailbox": {"host": "imap.example", "username": "u@prison.example", "password_env": "PW"},
    "smtp": {"host": "smtp.example", "from_address": "safercustody@prison.example"},
}


def with_change(section: str, key: str, value: object) -> dict:
    raw = {name: dict(values) for name, values in MINIMAL.items()}
    raw.setdefault(section, {})[key] = value
    return raw


def test_shipped_example_config_is_valid(monkeypatch):
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/nonexistent")
    config = config_module.load(REPO / "config" / "mailbot.example.toml")
    assert config.prison.name == "HMP Exampletown"
    assert config.mailbox.processed_folder == "Processed"


def test_defaults_fill_what_the_file_leaves_out(tmp_path):
    config = config_module.from_dict({**MINIMAL, "state": {"directory": str(tmp_path)}})
    assert config.mailbox.inbox == "INBOX"
    assert config.mailbox.quarantine_folder == "Quarantine"
    assert config.database.url == f"sqlite:///{tmp_path / 'mailbot.sqlite3'}"
    assert config.portal.labels["prisoner_number"] == "Prisoner number"
    assert config.own_addresses == {"safercustody@prison.example", "u@prison.example"}


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("mailbox", "port", "993", "mailbox.port must be a whole number"),
        ("mailbox", "security", "tls", "mailbox.security must be one of"),
        ("mailbox", "colour", "blue", "[mailbox] unknown key 'colour'"),
        ("smtp", "from_address", "nobody", "smtp.from_address must be an email address"),
        ("portal", "subject_pattern", "([", "portal.subject_pattern is not a valid"),
        ("portal", "senders", "one@example.org", "portal.senders must be a list"),
        ("database", "url", "mysql://x", "database.url must be"),
        ("mailbox", "poll_interval_seconds", 0, "poll_interval_seconds must be at least 1"),
    ],
)
def test_bad_values_are_named(section, key, value, message):
    with pytest.raises(ConfigError) as error:
        config_module.from_dict(with_change(section, key, value))
    assert message in str(error.value)


def test_missing_required_key_is_named():
    raw = {name: dict(values) for name, values in MINIMAL.items()}
    del raw["mailbox"]["host"]
    with pytest.raises(ConfigError, match=r"\[mailbox\] missing required key 'host'"):
        config_module.from_dict(raw)


def test_unknown_section_and_label_are_named():
    with pytest.raises(ConfigError, match=r"unknown section \[mailbx\]"):
        config_module.from_dict({**MINIMAL, "mailbx": {}})
    with pytest.raises(ConfigError, match=r"\[portal.labels\] unknown key 'nmae'"):
        config_module.from_dict({**MINIMAL, "portal": {"labels": {"nmae": "Name"}}})


def test_label_override_keeps_the_other_defaults():
    config = config_module.from_dict({**MINIMAL, "portal": {"labels": {"submitter_name": "Name"}}})
    assert config.portal.labels["submitter_name"] == "Name"
    assert config.portal.labels["prisoner_number"] == "Prisoner number"


def test_password_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    config = config_module.from_dict(with_change("mailbox", "password_file", str(secret)))
    assert config.mailbox.password() == "s3cret"
    monkeypatch.setenv("PW", "from-env")
    assert config_module.from_dict(MINIMAL).mailbox.password() == "from-env"
    monkeypatch.delenv("PW")
    with pytest.raises(ConfigError, match="environment variable PW is not set"):
        config_module.from_dict(MINIMAL).mailbox.password()


def test_cli_reports_a_bad_config_in_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[prison]\nname = "x"\n[mailbox]\nhost = 1\n')
    result = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(path), "run", "--once"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "mailbot: mailbox.host must be a string, not 1"


def test_cli_reports_a_missing_config_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILBOT_CONFIG", raising=False)
    result = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(tmp_path / "nope.toml"), "run"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "configuration file not found" in result.stderr


def test_config_check_refuses_a_missing_password_file(tmp_path, capsys):
    from mailbot.cli import main
    from mailbot.devtools.devservers import config_text

    path = tmp_path / "mailbot.toml"
    path.write_text(config_text(imap_port=1, username="u", password_file=tmp_path / "nope",
                                database_url=f"sqlite:///{tmp_path / 'm.sqlite3'}",
                                state_dir=tmp_path))
    assert main(["--config", str(path), "config", "check"]) == 2
    assert "password_file: cannot read" in capsys.readouterr().err
