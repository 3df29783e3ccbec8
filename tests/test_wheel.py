"""The server install: the wheel, installed into a fresh venv outside the repository,
carries everything it needs (templates, the report template, migrations, triage rules)
and runs `config check`, `run --once`, `drafts list` and `report --email` (written, and
sent to the safety team attached) against local servers."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, sample_bytes

pytestmark = pytest.mark.servers

SAFETY_TEAM = "safety.team@prison.example"


def test_the_wheel_installed_outside_the_repo_checks_runs_lists_and_reports(
    tmp_path, dovecot, smtp_sink, make_config
):
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = wheels.glob("mailbot-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # mailbot itself from the wheel; its dependencies from this environment's
    # site-packages, added as a plain path (its .pth files, and so the editable
    # install of the repository, are not processed).
    venv_site = Path(subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    (venv_site / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=300)

    dovecot.append(sample_bytes("01-portal-safety-multipart.eml"))
    dovecot.append(sample_bytes("02-portal-visits-enquiry-plain.eml"))
    config_path, _ = make_config(smtp_port=smtp_sink.port,
                                 extra=f'[alerts]\nsafety_team = ["{SAFETY_TEAM}"]\n')
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAILBOT_CONFIG")}

    def mailbot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([venv / "bin" / "mailbot", "--config", str(config_path), *args],
                              capture_output=True, text=True, cwd=outside, env=env,
                              timeout=300)

    where = subprocess.run([python, "-c", "import mailbot; print(mailbot.__file__)"],
                           capture_output=True, text=True, cwd=outside, env=env, check=True)
    assert where.stdout.startswith(str(venv)), where.stdout

    checked = mailbot("config", "check")
    assert checked.returncode == 0, checked.stderr
    ran = mailbot("run", "--once")
    assert ran.returncode == 0, ran.stderr
    assert "cannot be used" not in ran.stderr and "respond_failed" not in ran.stderr
    listed = mailbot("drafts", "list")
    assert listed.returncode == 0, listed.stderr
    assert "ack_no_consent" in listed.stdout
    assert len(smtp_sink.messages) == 1  # the visits enquiry's signposting reply
    reports = tmp_path / "reports"
    reported = mailbot("report", "--month", "2026-11", "--output", str(reports), "--email")
    assert reported.returncode == 0, reported.stderr
    assert (reports / "report-2026-11.html").is_file()
    [emailed] = [m for m, raw in zip(smtp_sink.parsed(), smtp_sink.messages, strict=True)
                 if raw["rcpt_tos"] == [SAFETY_TEAM]]
    pdf, page = list(emailed.iter_attachments())
    assert (pdf.get_filename(), page.get_filename()) == ("report-2026-11.pdf",
                                                         "report-2026-11.html")
    assert page.get_content_type() == "text/html"
    assert pdf.get_payload(decode=True).startswith(b"%PDF-")
