"""Configuration is validated at start, with errors that name the bad key."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import tomllib
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


def test_the_defaults_are_unchanged(tmp_path, monkeypatch):
    """What a file that names only the required keys gets (as before issue 12)."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    config = config_module.from_dict(MINIMAL)
    assert config.state_dir == tmp_path / ".local/state/mailbot"
    assert config.database.url == f"sqlite:///{tmp_path / '.local/state/mailbot/mailbot.sqlite3'}"
    assert config.source is None
    assert dataclasses.asdict(config.mailbox) == {
        "host": "imap.example", "username": "u@prison.example", "port": 993, "security": "ssl",
        "password_file": None, "password_env": "PW", "auth": "password", "oauth2": None,
        "inbox": "INBOX",
        "processed_folder": "Processed", "quarantine_folder": "Quarantine",
        # Issue 15: unset means the server's \Sent (SPECIAL-USE), else "Sent".
        "sent_folder": None,
        "idle": True, "poll_interval_seconds": 60, "batch_size": 200,
        "max_message_bytes": 50 * 1024 * 1024, "timeout_seconds": 30, "connect_attempts": 4,
    }
    assert dataclasses.asdict(config.smtp) == {
        "host": "smtp.example", "from_address": "safercustody@prison.example", "port": 587,
        "security": "starttls", "username": None, "password_file": None, "password_env": None,
        "timeout_seconds": 30, "auth": "password", "oauth2": None,
    }
    assert config.prison == config_module.PrisonSettings(name="HMP Exampletown")
    assert config.portal == config_module.PortalSettings()
    assert config.portal.senders == ("safercustody-forms@portal.example.org",)
    assert config.portal.labels == config_module.DEFAULT_LABELS
    assert dataclasses.asdict(config.alerts) == {
        "safety_team": (), "urgent": (), "include_text": False, "persistent": (),
        "outage_minutes": 30, "mailbox_folder": "Mailbot alerts",
    }
    assert dataclasses.asdict(config.replies) == {
        "send_signposting": True, "signpost_max_words": 80, "auto_reply_window_hours": 24,
        "template_override_dir": None, "max_send_attempts": 8, "retry_base_seconds": 30,
    }
    assert config.replies.override_dir is None
    assert dataclasses.asdict(config.deadlines) == {
        "respond_within_hours": 72, "warn_when_hours_left": (24, 6), "check_interval_minutes": 5,
        "persistent_threshold": 3, "persistent_window_days": 7,
    }
    assert dataclasses.asdict(config.office_hours) == {
        "days": ("Mon", "Tue", "Wed", "Thu", "Fri"), "start": "08:00", "end": "17:00",
        "timezone": "Europe/London",
    }
    assert dataclasses.asdict(config.retention) == {"months": 24, "raw_message_months": 24}
    # Issue 15: unset means the server's \Drafts (SPECIAL-USE), else "Drafts".
    assert dataclasses.asdict(config.drafts) == {"mailbox_drafts": True, "drafts_folder": None}
    assert config.triage.rules_file is None


def test_state_directory_comes_from_systemd_when_the_file_names_none(tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    config = config_module.from_dict(MINIMAL)
    assert config.state_dir == tmp_path
    assert config.database.url == f"sqlite:///{tmp_path / 'mailbot.sqlite3'}"


def test_values_are_kept_as_the_rest_of_mailbot_reads_them():
    config = config_module.from_dict({
        **MINIMAL,
        "portal": {"senders": ["Forms@Portal.Example.ORG"], "dkim_domain": "Portal.Example.ORG"},
        "alerts": {"safety_team": ["safety@prison.example"], "outage_minutes": 5},
        "deadlines": {"warn_when_hours_left": [12]},
    })
    assert config.portal.senders == ("forms@portal.example.org",)
    assert config.portal.dkim_domain == "portal.example.org"
    assert config.alerts.safety_team == ("safety@prison.example",)
    assert config.alerts.outage_minutes == 5.0 and isinstance(config.alerts.outage_minutes, float)
    assert config.deadlines.warn_when_hours_left == (12,)


def test_sections_stay_frozen_dataclasses():
    """The template policy blanks staff-only settings with `dataclasses.replace`."""
    prison = config_module.from_dict(MINIMAL).prison
    public = dataclasses.replace(prison, duty_phone="")
    assert public.name == "HMP Exampletown" and public.duty_phone == ""
    with pytest.raises(dataclasses.FrozenInstanceError):
        prison.name = "HMP Elsewhere"  # type: ignore[misc]


def test_the_example_config_documents_every_key():
    """Every key of every section is in the example, set or shown commented out, and the
    example stays valid with every commented-out key put in."""
    text = (REPO / "config" / "mailbot.example.toml").read_text()
    # A key is a bare word or, in a table of IDs (Entra's groups), a quoted string.
    uncommented = re.sub(r'(?m)^# (\[[\w.]+\]|(?:\w+|"[^"]+") = .*)$', r"\1", text)
    documented = tomllib.loads(uncommented)
    signing_in = _oauth2_examples(text)
    for section, info in config_module.Config.model_fields.items():
        keys = {f.name for f in dataclasses.fields(info.annotation)}  # type: ignore[arg-type]
        shown = set(documented.get(section, {}))
        if section in ("mailbox", "smtp"):  # the oauth2 tables are in the OAuth2 examples
            shown |= {key for example in signing_in for key in example.get(section, {})}
        assert shown == keys, section
    config_module.from_dict(documented)
    oauth2_keys = {f.name for f in dataclasses.fields(config_module.OAuth2Settings)}
    assert {key for example in signing_in for section in ("mailbox", "smtp")
            for key in example.get(section, {}).get("oauth2", {})} == oauth2_keys


def _oauth2_examples(text: str) -> list[dict]:
    """The example's OAuth2 blocks (lines starting "#: "), each as TOML."""
    blocks = re.findall(r"(?m)(?:^#: .*\n)+", text)
    return [tomllib.loads(re.sub(r"(?m)^#: ", "", block)) for block in blocks]


def test_each_oauth2_example_in_the_example_config_is_valid(monkeypatch):
    """Each "#: " block put in place of the keys it names (and the password keys) gives
    a configuration mailbot accepts: the example shows every way to sign in."""
    text = (REPO / "config" / "mailbot.example.toml").read_text()
    examples = _oauth2_examples(text)
    assert [e["mailbox"]["oauth2"]["provider"] for e in examples] == [
        "microsoft", "microsoft", "google", "generic"]
    for example in examples:
        raw = tomllib.loads(text)
        for section, keys in example.items():
            if section in ("mailbox", "smtp"):
                for key in ("password_file", "password_env"):
                    raw[section].pop(key, None)
            raw[section] = {**raw.get(section, {}), **keys}
        config = config_module.from_dict(raw)
        assert config.mailbox.auth == "oauth2" and config.smtp_oauth2 is not None


# The messages changed with the move to pydantic models (issue 12): one form for every
# problem, "[section] key: what is wrong, not VALUE", where each check used to word its own.
@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("mailbox", "port", "993", "[mailbox] port: Input should be a valid integer, not '993'"),
        ("mailbox", "port", True, "[mailbox] port: Input should be a valid integer, not True"),
        ("mailbox", "port", 70000, "[mailbox] port: Input should be less than or equal to 65535"),
        ("mailbox", "security", "tls",
         "[mailbox] security: Input should be 'ssl', 'starttls' or 'none', not 'tls'"),
        ("mailbox", "colour", "blue", "[mailbox] unknown key 'colour'"),
        ("mailbox", "idle", "yes", "[mailbox] idle: Input should be a valid boolean, not 'yes'"),
        ("smtp", "from_address", "nobody",
         "[smtp] from_address: Input should be an email address, not 'nobody'"),
        ("portal", "subject_pattern", "([",
         "[portal] subject_pattern: Input should be a valid regular expression"),
        ("portal", "senders", "one@example.org",
         "[portal] senders: Input should be a list, not 'one@example.org'"),
        ("database", "url", "mysql://x", "[database] url: Input should be sqlite:///PATH or"),
        ("mailbox", "poll_interval_seconds", 0,
         "[mailbox] poll_interval_seconds: Input should be greater than or equal to 1, not 0"),
        ("replies", "signpost_max_words", -1,
         "[replies] signpost_max_words: Input should be greater than or equal to 0, not -1"),
        ("alerts", "outage_minutes", "30",
         "[alerts] outage_minutes: Input should be a valid number, not '30'"),
        ("alerts", "urgent", ["duty@prison.example", "a@b, c@d"],
         "[alerts] urgent[1]: Input should be one email address, not 'a@b, c@d'"),
        ("deadlines", "warn_when_hours_left", [24, "6"],
         "[deadlines] warn_when_hours_left[1]: Input should be a valid integer, not '6'"),
        ("office_hours", "days", ["Mon", "Sunday"],
         "[office_hours] days[1]: Input should be 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat' or"),
        ("office_hours", "start", "8am", "[office_hours] start: Input should be a time as HH:MM"),
        ("office_hours", "timezone", "Europe/Londn",
         "[office_hours] timezone: Input should be a time zone such as 'Europe/London'"),
        ("state", "directory", 5, "[state] directory: Input should be a valid string, not 5"),
    ],
)
def test_bad_values_are_named(section, key, value, message):
    with pytest.raises(ConfigError) as error:
        config_module.from_dict(with_change(section, key, value))
    assert message in str(error.value)


def test_a_wrong_type_names_the_section_and_key(tmp_path):
    path = tmp_path / "mailbot.toml"
    path.write_text(
        '[prison]\nname = "HMP Exampletown"\n'
        '[mailbox]\nhost = "imap.example"\nport = "993"\nusername = "u"\npassword_env = "PW"\n'
        '[smtp]\nhost = "smtp.example"\nfrom_address = "safercustody@prison.example"\n'
    )
    with pytest.raises(ConfigError) as error:
        config_module.load(path)
    assert str(error.value) == "[mailbox] port: Input should be a valid integer, not '993'"


def test_an_unknown_key_is_named_with_its_section():
    with pytest.raises(ConfigError) as error:
        config_module.from_dict({**MINIMAL, "replies": {"signpost_max_word": 80}})
    assert str(error.value) == "[replies] unknown key 'signpost_max_word'"


def test_missing_required_key_is_named():
    raw = {name: dict(values) for name, values in MINIMAL.items()}
    del raw["mailbox"]["host"]
    with pytest.raises(ConfigError) as error:
        config_module.from_dict(raw)
    assert str(error.value) == "[mailbox] missing required key 'host'"


def test_missing_required_section_and_a_section_that_is_not_a_table():
    with pytest.raises(ConfigError, match=r"^missing section \[smtp\]$"):
        config_module.from_dict({"prison": MINIMAL["prison"], "mailbox": MINIMAL["mailbox"]})
    with pytest.raises(ConfigError, match=r"^\[mailbox\] must be a table, not 'imap.example'$"):
        config_module.from_dict({**MINIMAL, "mailbox": "imap.example"})


def test_every_problem_is_named_on_one_line():
    raw = {"prison": {"name": "x"}, "mailbox": {"host": 1, "username": "u"}, "smtpp": {}}
    with pytest.raises(ConfigError) as error:
        config_module.from_dict(raw)
    assert str(error.value) == (
        "[mailbox] host: Input should be a valid string, not 1; "
        "missing section [smtp]; unknown section [smtpp]"
    )


def test_unknown_section_and_label_are_named():
    with pytest.raises(ConfigError, match=r"unknown section \[mailbx\]"):
        config_module.from_dict({**MINIMAL, "mailbx": {}})
    with pytest.raises(ConfigError, match=r"\[portal.labels\] unknown key 'nmae'"):
        config_module.from_dict({**MINIMAL, "portal": {"labels": {"nmae": "Name"}}})
    with pytest.raises(ConfigError, match=r"\[portal.labels\] submitter_name: Input should be a"):
        config_module.from_dict({**MINIMAL, "portal": {"labels": {"submitter_name": 1}}})


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
    assert result.stderr.strip() == (
        "mailbot: [mailbox] host: Input should be a valid string, not 1; "
        "[mailbox] missing required key 'username'; missing section [smtp]"
    )


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
