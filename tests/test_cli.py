"""The command line as click sees it (`CliRunner`): each group lists its verbs, a mistyped
command exits 2 with a message, and one verb of each area runs with its exit code.

Only a configuration and SQLite are needed: the mailbox it names is never there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailbot.cli import cli, main
from mailbot.devtools.devservers import config_text

# Every group's verbs, as README.md's "Using it" lists them: scripts rely on these.
VERBS = {
    (): ["concerns", "config", "consent", "db", "drafts", "export", "mailbox", "messages",
         "outbox", "report", "retention", "run", "status", "templates", "users", "web"],
    ("concerns",): ["action", "close", "respond", "show"],
    ("config",): ["check"],
    ("consent",): ["grant", "list", "restrict", "withdraw"],
    ("db",): ["upgrade"],
    ("drafts",): ["approve", "list", "redraft", "reject", "show"],
    ("mailbox",): ["check"],
    ("messages",): ["list", "replay", "show"],
    ("outbox",): ["list", "resend"],
    ("templates",): ["check", "export", "preview"],
    ("users",): ["add", "disable", "list", "reset", "role"],
}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """A readable configuration on SQLite whose mailbox (port 1) never answers."""
    password_file = tmp_path / "imap-password"
    password_file.write_text("secret\n")
    path = tmp_path / "mailbot.toml"
    path.write_text(config_text(imap_port=1, username="u", password_file=password_file,
                                database_url=f"sqlite:///{tmp_path / 'mailbot.sqlite3'}",
                                state_dir=tmp_path, smtp_port=1))
    return path


def _verbs_listed(help_text: str) -> list[str]:
    commands = help_text.split("Commands:", 1)[1]
    return sorted(line.split()[0] for line in commands.splitlines() if line.strip())


@pytest.mark.parametrize("group", sorted(VERBS), ids=lambda g: " ".join(g) or "mailbot")
def test_help_of_each_group_lists_its_verbs(runner, group):
    result = runner.invoke(cli, [*group, "--help"], env={"MAILBOT_CONFIG": None})
    assert result.exit_code == 0, result.output
    assert _verbs_listed(result.output) == VERBS[group]


def test_help_needs_no_configuration(runner):
    result = runner.invoke(cli, ["drafts", "approve", "--help"], env={"MAILBOT_CONFIG": None})
    assert result.exit_code == 0
    assert "--by" in result.output and "--edit" in result.output


@pytest.mark.parametrize("argv, message", [
    (["drafts", "show", "seven"], "'seven' is not a valid integer"),
    (["drafts", "approve", "7"], "Missing option '--by'"),
    (["consent", "grant", "--prisoner", "A1234BC", "--contact", "j@example.com", "--by", "Sam",
      "--scope", "everything"], "'everything' is not one of"),
    (["report", "--month", "November", "--output", "."], "'November' is not a month"),
    (["drafts", "burn"], "No such command 'burn'"),
    (["drafts"], "Commands:"),
])
def test_a_usage_error_exits_2_with_a_message(runner, config_path, argv, message):
    result = runner.invoke(cli, ["--config", str(config_path), *argv])
    assert result.exit_code == 2
    assert message in result.stderr


def test_main_returns_2_for_a_usage_error_and_says_why(capsys):
    assert main(["drafts", "show", "seven"]) == 2
    err = capsys.readouterr().err
    assert "Usage: mailbot drafts show" in err and "'seven' is not a valid integer" in err


def test_main_returns_0_for_help_and_version(capsys):
    assert main(["--help"]) == 0
    assert main(["--version"]) == 0
    assert "mailbot 0.1.0" in capsys.readouterr().out


def test_a_missing_configuration_exits_2_in_one_line(runner, tmp_path):
    result = runner.invoke(cli, ["--config", str(tmp_path / "nope.toml"), "drafts", "list"])
    assert result.exit_code == 2
    assert result.stderr == f"mailbot: configuration file not found: {tmp_path / 'nope.toml'}\n"


def test_mailbot_config_stands_in_for_the_option(runner, config_path):
    result = runner.invoke(cli, ["config", "check"], env={"MAILBOT_CONFIG": str(config_path)})
    assert result.exit_code == 0, result.output
    assert result.stdout == f"configuration OK: {config_path}\n"


def test_admin_db_upgrade_runs(runner, config_path):
    result = runner.invoke(cli, ["--config", str(config_path), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "database schema is up to date\n"


def test_admin_retention_dry_run_changes_nothing(runner, config_path):
    result = runner.invoke(cli, ["--config", str(config_path), "retention", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("dry run: nothing changed\n")


def test_service_status_of_a_mailbox_never_polled_exits_1(runner, config_path):
    result = runner.invoke(cli, ["--config", str(config_path), "status"])
    assert result.exit_code == 1, result.output
    assert "UNHEALTHY: no successful poll" in result.stdout
    assert result.stdout.endswith("status: unhealthy\n")


def test_mailbox_check_of_a_mailbox_not_there_exits_3_in_one_line(runner, config_path):
    result = runner.invoke(cli, ["--config", str(config_path), "mailbox", "check"])
    assert result.exit_code == 3, result.output
    said = [line for line in result.stderr.splitlines() if line.startswith("mailbot: ")]
    assert len(said) == 1 and said[0].startswith("mailbot: cannot reach the mailbox at "
                                                 "127.0.0.1:1 (")


def test_messages_list_of_an_empty_log_is_an_empty_json_list(runner, config_path):
    result = runner.invoke(cli, ["--config", str(config_path), "messages", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_messages_show_of_no_message_exits_1(runner, config_path):
    result = runner.invoke(cli, ["--config", str(config_path), "messages", "show", "9"])
    assert result.exit_code == 1
    assert result.stderr == "mailbot: no message 9\n"


def test_reports_export_of_an_empty_log_is_an_empty_json_list(runner, config_path, tmp_path):
    output = tmp_path / "log.json"
    result = runner.invoke(cli, ["--config", str(config_path), "export", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert json.loads(output.read_text(encoding="utf-8")) == []


def test_reports_xlsx_without_dates_exits_2(runner, config_path):
    result = runner.invoke(cli, ["--config", str(config_path), "export", "--format", "xlsx"])
    assert result.exit_code == 2
    assert "--format xlsx needs --from, --to and --output" in result.stderr


def test_consent_grant_then_list(runner, config_path):
    base = ["--config", str(config_path), "consent"]
    granted = runner.invoke(cli, [*base, "grant", "--prisoner", "A1234BC", "--contact",
                                  "jane@example.com", "--scope", "wellbeing", "--by", "Sam"])
    assert granted.exit_code == 0, granted.output
    assert granted.stdout == "consent 'wellbeing' recorded\n"
    listed = runner.invoke(cli, [*base, "list", "--prisoner", "A1234BC", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert (row["contact"], row["scope"], row["recorded_by"]) == (
        "jane@example.com", "wellbeing", "Sam")


def test_drafts_list_with_none_is_its_header(runner, config_path):
    result = runner.invoke(cli, ["--config", str(config_path), "drafts", "list"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["id", "reference", "template", "status", "urgency", "to"]


def test_drafts_show_of_no_draft_is_refused(runner, config_path):
    result = runner.invoke(cli, ["--config", str(config_path), "drafts", "show", "3"])
    assert result.exit_code == 5
    assert result.stderr == "mailbot: no draft 3\n"


def test_templates_check_passes_on_the_shipped_templates(runner, config_path):
    result = runner.invoke(cli, ["--config", str(config_path), "templates", "check"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "templates OK\n"


def test_concerns_show_of_no_concern_is_refused_with_5(runner, config_path):
    result = runner.invoke(cli, ["--config", str(config_path), "concerns", "show",
                                 "SC-2026-00042"])
    assert result.exit_code == 5
    assert result.stderr == "mailbot: no concern SC-2026-00042\n"
