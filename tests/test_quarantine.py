"""Quarantine replay: once the cause is fixed, a quarantined message, or a form logged
for review because it could not be read, is read again and joins the log; one that still
cannot be read stays as it is."""

from __future__ import annotations

import json

import pytest

from mailbot.cli import main
from tests.conftest import sample_bytes

pytestmark = pytest.mark.servers

# A portal that words every label its own way (Welsh-language labels, say).
RELABELLED = {
    "Your name": "Eich enw",
    "Your email address": "Eich cyfeiriad e-bost",
    "Prisoner number": "Rhif y carcharor",
    "Prisoner's full name": "Enw llawn y carcharor",
    "What is your concern about?": "Am beth mae eich pryder?",
    "What is your concern?": "Beth yw eich pryder?",
    "How urgent is your concern?": "Pa mor frys yw eich pryder?",
}
LABEL_KEYS = {
    "Your name": "submitter_name",
    "Your email address": "submitter_email",
    "Prisoner number": "prisoner_number",
    "Prisoner's full name": "prisoner_name",
    "What is your concern about?": "topic",
    "What is your concern?": "concern_text",
    "How urgent is your concern?": "urgency",
}


def relabelled_form() -> bytes:
    text = sample_bytes("02-portal-visits-enquiry-plain.eml").decode()
    for label, welsh in RELABELLED.items():
        text = text.replace(f"{label}:", f"{welsh}:")
    # Drop every other field so nothing is recognised with the default labels.
    kept = [line for line in text.split("\n")
            if not any(line.startswith(p) for p in (
                "Your telephone", "Your relationship", "Would you like", "Prisoner's date",
                "Prison:", "Wing", "Are you happy", "Do you understand", "prisoner with",
                "Submitted", "Reference", " Yes", "Are you"))]
    return "\n".join(kept).encode()


def test_a_form_fixed_by_new_labels_is_read_again_in_place(dovecot, smtp_sink, make_config,
                                                           capsys):
    dovecot.append(relabelled_form())
    path, _ = make_config(smtp_port=smtp_sink.port)
    assert main(["--config", str(path), "run", "--once"]) == 0
    # Logged for review (the clock runs on it), not quarantined as well.
    assert dovecot.folder_counts("Quarantine", "Processed") == {"Quarantine": 0,
                                                                "Processed": 1}
    capsys.readouterr()
    main(["--config", str(path), "messages", "list", "--json"])
    [message] = json.loads(capsys.readouterr().out)
    assert message["disposition"] == "logged" and message["reference"]
    # Replayed before the cause is fixed: still unreadable, and still replayable.
    assert main(["--config", str(path), "messages", "replay", str(message["id"]),
                 "--by", "Admin Ann"]) == 5
    assert "still unreadable" in capsys.readouterr().out

    labels = "\n".join(f'{LABEL_KEYS[k]} = "{v}"' for k, v in RELABELLED.items())
    path, _ = make_config(smtp_port=smtp_sink.port, extra=f"[portal.labels]\n{labels}\n")
    assert main(["--config", str(path), "messages", "replay", str(message["id"]),
                 "--by", "Admin Ann"]) == 0
    capsys.readouterr()
    main(["--config", str(path), "export"])
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["reference"] == message["reference"]  # the same log entry, read again
    assert entry["submitter"]["email"] == "sam.sample@example.net"
    assert entry["topic"] == "Visits"
    assert "visits start on a Sunday" in entry["concern_text"]
    assert not any("could not be read" in p for p in entry["problems"])
    assert dovecot.folder_counts("Quarantine", "Processed") == {"Quarantine": 0,
                                                                "Processed": 1}
    # Read once: a second replay is refused.
    assert main(["--config", str(path), "messages", "replay", str(message["id"]),
                 "--by", "Admin Ann"]) == 5


def test_a_message_still_unreadable_stays_quarantined(dovecot, make_config, capsys):
    dovecot.append(b"not an email at all\r\n")
    path, _ = make_config()
    assert main(["--config", str(path), "run", "--once"]) == 0
    capsys.readouterr()
    main(["--config", str(path), "messages", "list", "--json"])
    [message] = json.loads(capsys.readouterr().out)
    code = main(["--config", str(path), "messages", "replay", str(message["id"]),
                 "--by", "Admin Ann"])
    assert code == 5
    assert "still unreadable" in capsys.readouterr().out
    assert dovecot.folder_counts("Quarantine")["Quarantine"] == 1


def test_only_quarantined_messages_can_be_replayed(dovecot, make_config, capsys):
    dovecot.append(sample_bytes("06-out-of-office.eml"))
    path, _ = make_config()
    assert main(["--config", str(path), "run", "--once"]) == 0
    capsys.readouterr()
    assert main(["--config", str(path), "messages", "replay", "1", "--by", "Admin Ann"]) == 5
    assert "not quarantined" in capsys.readouterr().err
