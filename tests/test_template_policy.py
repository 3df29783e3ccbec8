"""The template policy: what each acknowledgement may know, checked, enforced and reloaded."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape

from mailbot.config import PrisonSettings
from mailbot.replies import policy
from mailbot.replies.policy import (
    ACKNOWLEDGEMENTS,
    Problem,
    check_templates,
    context_for,
    one_version_of_templates,
    preview,
    rejected_templates,
    render_acknowledgement,
    sample_context,
    unfilled_markers,
)
from mailbot.replies.render import SHIPPED_TEMPLATES, TemplateError
from tests.forms import PRISON

REFERENCE = "PFH-SC-20261114-0042"
PRISONER_NAME = "Jordan Quickfall"
PRISONER_NUMBER = "A1234BC"
WING = "Kestrel Wing"
NOT_CONSENTED = ("ack_no_consent", "ack_restricted", "ack_unverified")


def full_context(**changes: Any) -> dict[str, Any]:
    """Everything the code has to hand about a concern, as mailbot/replies/drafts.py passes it."""
    context: dict[str, Any] = {
        "reference": REFERENCE,
        "prison": PRISON,
        "submitter_name": "Morgan Quickfall",
        "received_at": datetime(2026, 11, 14, 21, 46, tzinfo=UTC),
        "consent_scope": "full",
        "prisoner_name": PRISONER_NAME,
        "prisoner_number": PRISONER_NUMBER,
        "prisoner_location": WING,
        "prisoner_dob": "03/04/1990",
        "establishment": "HMP Exampletown",
        "concern_text": "Jordan on Kestrel Wing said he cannot go on.",
    }
    context.update(changes)
    return context


def write(path: Path, source: str) -> Path:
    """Write a template and move its mtime on, as a later edit on disk would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    later = path.stat().st_mtime + 5 if existed else None
    path.write_text(source, encoding="utf-8")
    if later is not None:
        os.utime(path, (later, later))
    return path


def parts(email: Any) -> list[str]:
    return [email.subject, email.text, email.html or ""]


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a newly started mailbot: no last good versions, no rejections."""
    monkeypatch.setattr(policy, "_state", policy._State())


# --- the shipped templates -----------------------------------------------------------------


def test_shipped_templates_pass_the_check() -> None:
    assert check_templates() == []


def test_every_acknowledgement_has_subject_text_and_html() -> None:
    for name, consent in ACKNOWLEDGEMENTS.items():
        folder = "replies/consented" if consent in ("wellbeing", "full") else "replies"
        for part in ("subject", "txt", "html"):
            assert (SHIPPED_TEMPLATES / folder / f"{name}.{part}.j2").is_file()


def test_only_the_consented_folder_may_name_a_prisoner() -> None:
    for path in (SHIPPED_TEMPLATES / "replies").glob("*.j2"):
        assert "prisoner_" not in path.read_text(encoding="utf-8"), path.name
    assert "prisoner_name" in (
        SHIPPED_TEMPLATES / "replies/consented/ack_consent.txt.j2"
    ).read_text(encoding="utf-8")


# --- the check: what it catches --------------------------------------------------------------


def test_no_consent_override_that_names_the_prisoner_fails_naming_file_and_variable(
    tmp_path: Path,
) -> None:
    write(tmp_path / "replies/ack_no_consent.txt.j2", "Hello,\nDear {{ prisoner_name }}\n")
    problems = check_templates(tmp_path)
    assert problems == [
        Problem(
            str(tmp_path / "replies/ack_no_consent.txt.j2"),
            "uses 'prisoner_name', which names or locates the prisoner; "
            "not allowed where consent = none",
            2,
        )
    ]
    assert str(problems[0]) == (
        f"{tmp_path}/replies/ack_no_consent.txt.j2:2: uses 'prisoner_name', which names "
        "or locates the prisoner; not allowed where consent = none"
    )


@pytest.mark.parametrize("variable", ["prisoner_number", "prisoner_location", "concern_text"])
@pytest.mark.parametrize("name", NOT_CONSENTED)
def test_no_template_without_consent_may_use_an_identifying_variable(
    tmp_path: Path, name: str, variable: str
) -> None:
    write(tmp_path / f"replies/{name}.txt.j2", f"{{{{ {variable} }}}}")
    [problem] = check_templates(tmp_path)
    assert f"{name}.txt.j2" in problem.file
    assert repr(variable) in problem.message
    assert "names or locates the prisoner" in problem.message


def test_variables_used_in_an_included_file_count_for_the_template_including_it(
    tmp_path: Path,
) -> None:
    write(tmp_path / "replies/_details.j2", "{{ prisoner_number }}")
    write(tmp_path / "replies/ack_unverified.txt.j2", '{% include "replies/_details.j2" %}\n')
    [problem] = check_templates(tmp_path)
    assert problem.file.endswith("replies/_details.j2")
    assert "'prisoner_number'" in problem.message
    assert "included by replies/ack_unverified.txt.j2" in problem.message


def test_macros_imported_from_a_file_are_followed(tmp_path: Path) -> None:
    write(
        tmp_path / "replies/_signposting_suggestions.j2",
        "{% macro topic(category) %}{{ prisoner_name }}{% endmacro %}"
        "{% macro suggestion(category, prison) %}x{% endmacro %}",
    )
    problems = check_templates(tmp_path)
    assert {p.file for p in problems} == {str(tmp_path / "replies/_signposting_suggestions.j2")}
    assert all("'prisoner_name'" in p.message for p in problems)


def test_syntax_error_fails_naming_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "replies/ack_restricted.txt.j2", "Hello,\n\n{% if %}\n")
    [problem] = check_templates(tmp_path)
    assert problem.file == str(tmp_path / "replies/ack_restricted.txt.j2")
    assert problem.line == 3
    assert "syntax error" in problem.message
    assert str(problem).startswith(f"{tmp_path}/replies/ack_restricted.txt.j2:3: syntax error")


def test_unknown_filter_is_caught_by_the_check(tmp_path: Path) -> None:
    write(tmp_path / "replies/ack_restricted.txt.j2", "{{ reference | shout }}")
    [problem] = check_templates(tmp_path)
    assert "shout" in problem.message


def test_unknown_variable_fails_naming_it(tmp_path: Path) -> None:
    write(tmp_path / "replies/ack_no_consent.subject.j2", "Re: {{ refrence }}")
    [problem] = check_templates(tmp_path)
    assert problem.file.endswith("ack_no_consent.subject.j2")
    assert "'refrence'" in problem.message
    assert "does not declare for ack_no_consent" in problem.message


def test_unverified_reply_may_not_use_the_name_given_on_the_form(tmp_path: Path) -> None:
    write(tmp_path / "replies/ack_unverified.txt.j2", "Dear {{ submitter_name }}")
    [problem] = check_templates(tmp_path)
    assert "'submitter_name'" in problem.message


def test_staff_only_duty_phone_is_refused_in_replies(tmp_path: Path) -> None:
    write(tmp_path / "replies/ack_no_consent.txt.j2", "Ring {{ prison.duty_phone }}")
    [problem] = check_templates(tmp_path)
    assert "prison.duty_phone" in problem.message and "staff only" in problem.message


def test_reaching_for_internals_is_caught_before_the_sandbox_has_to(tmp_path: Path) -> None:
    write(tmp_path / "replies/ack_restricted.txt.j2", "{{ reference.__class__ }}")
    [problem] = check_templates(tmp_path)
    assert "'__class__'" in problem.message


def test_an_html_override_without_its_text_is_reported_and_still_checked(
    tmp_path: Path,
) -> None:
    write(tmp_path / "replies/ack_unverified.html.j2", "<p>{{ prisoner_number }}</p>")
    problems = check_templates(tmp_path)
    assert [p.file for p in problems] == [str(tmp_path / "replies/ack_unverified.html.j2")] * 2
    assert "is not used" in problems[0].message
    assert "'prisoner_number'" in problems[1].message
    # Rendering is unaffected: the shipped text and HTML go out together.
    email = render_acknowledgement("ack_unverified", full_context(), override_dir=tmp_path)
    assert email == render_acknowledgement("ack_unverified", full_context())
    assert email.html is not None and PRISONER_NUMBER not in email.html


def test_template_file_with_no_policy_entry_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "replies/ack_family_day.txt.j2", "Hello {{ reference }}")
    [problem] = check_templates(tmp_path)
    assert problem.file.endswith("ack_family_day.txt.j2")
    assert "[templates.ack_family_day]" in problem.message


def test_a_template_in_the_wrong_consent_folder_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "replies/consented/ack_no_consent.txt.j2", "Hello")
    write(tmp_path / "replies/ack_consent.txt.j2", "Hello")
    problems = check_templates(tmp_path)
    assert len(problems) == 2
    assert all("wrong folder" in p.message for p in problems)


def test_an_override_cannot_replace_the_policy(tmp_path: Path) -> None:
    write(tmp_path / "replies/policy.toml", "[templates.ack_no_consent]\nconsent = 'full'\n")
    [problem] = check_templates(tmp_path)
    assert problem.file.endswith("policy.toml") and "cannot be overridden" in problem.message


def test_alerts_are_checked_too(tmp_path: Path) -> None:
    write(tmp_path / "alerts/urgent.txt.j2", "URGENT {{ referense }}")
    [problem] = check_templates(tmp_path)
    assert problem.file.endswith("alerts/urgent.txt.j2") and "'referense'" in problem.message


def copy_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str = "") -> Path:
    copy = tmp_path / "policy.toml"
    shutil.copy(policy.POLICY_FILE, copy)
    with copy.open("a", encoding="utf-8") as fh:
        fh.write(extra)
    monkeypatch.setattr(policy, "POLICY_FILE", copy)
    return copy


def test_policy_entry_with_missing_files_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_policy(
        tmp_path,
        monkeypatch,
        '\n[templates.ack_family_day]\nconsent = "none"\nvariables = ["reference"]\n',
    )
    problems = [str(p) for p in check_templates()]
    assert len(problems) == 2
    assert any("needs replies/ack_family_day.subject.j2" in p for p in problems)
    assert any("needs replies/ack_family_day.txt.j2" in p for p in problems)


NO_CONSENT_ENTRY = (
    'consent = "none"\nvariables = ["reference", "prison", "submitter_name", "received_at"]'
)


def edit_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replacement: str) -> None:
    copy = copy_policy(tmp_path, monkeypatch)
    text = copy.read_text(encoding="utf-8")
    assert text.count(NO_CONSENT_ENTRY) == 1
    copy.write_text(text.replace(NO_CONSENT_ENTRY, replacement), encoding="utf-8")


def test_policy_may_not_declare_identifying_variables_without_consent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_policy(
        tmp_path, monkeypatch, 'consent = "none"\nvariables = ["reference", "prisoner_name"]'
    )
    problems = [str(p) for p in check_templates()]
    assert (
        f"{tmp_path}/policy.toml: [templates.ack_no_consent] declares 'prisoner_name', which "
        "names or locates the prisoner; not allowed where consent = none"
    ) in problems
    # Defence in depth: even so declared, the name is never handed to the template.
    assert "prisoner_name" not in context_for("ack_no_consent", full_context())


def test_policy_must_agree_with_the_consent_mailbot_sends_a_template_under(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_policy(
        tmp_path,
        monkeypatch,
        'consent = "full"\nvariables = ["reference", "prison", "prisoner_name"]',
    )
    problems = [str(p) for p in check_templates()]
    assert any("mailbot sends ack_no_consent under consent = none" in p for p in problems)
    assert "prisoner_name" not in context_for("ack_no_consent", full_context())
    # The rejected policy entry means the template is not used at all.
    with pytest.raises(TemplateError, match="ack_no_consent"):
        render_acknowledgement("ack_no_consent", full_context())


@pytest.mark.parametrize(
    ("replacement", "problem"),
    [
        ('consent = "none"\nvariables = ["reference"]\ncolour = "red"',
         "[templates.ack_no_consent] unknown key 'colour'"),
        ('consent = "nome"\nvariables = ["reference"]',
         "[templates.ack_no_consent] consent: Input should be 'none', 'wellbeing', 'full' "
         "or 'restricted', not 'nome'"),
        ('consent = "none"\nvariables = "reference"',
         "[templates.ack_no_consent] variables: Input should be a valid list, not 'reference'"),
    ],
)
def test_a_policy_entry_of_the_wrong_shape_names_its_key_and_is_not_used(
    replacement: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_policy(tmp_path, monkeypatch, replacement)
    assert f"{tmp_path}/policy.toml: {problem}" in [str(p) for p in check_templates()]
    with pytest.raises(TemplateError, match="ack_no_consent"):
        render_acknowledgement("ack_no_consent", full_context())
    # The other entries are still good.
    assert render_acknowledgement("ack_restricted", full_context()).subject


# --- rendering: only what the consent allows ------------------------------------------------


@pytest.mark.parametrize("name", sorted(ACKNOWLEDGEMENTS))
def test_every_acknowledgement_renders_from_a_full_context(name: str) -> None:
    email = render_acknowledgement(name, full_context())
    assert email.subject == f"Your message to the safer custody team [{REFERENCE}]"
    assert email.html is not None
    for part in (email.text, email.html):
        assert REFERENCE in part
        assert "safer custody team at HMP Exampletown" in part
        assert "If you believe someone's life is in immediate danger, call 999." in part


@pytest.mark.parametrize("name", NOT_CONSENTED)
def test_without_consent_nothing_about_the_prisoner_appears(name: str) -> None:
    email = render_acknowledgement(name, full_context())
    for part in parts(email):
        for secret in (PRISONER_NAME, "Jordan", PRISONER_NUMBER, WING, "Kestrel", "1990"):
            assert secret not in part
        lowered = part.lower()
        for phrase in ("is held", "is here", "your son", "your daughter", "in our care"):
            assert phrase not in lowered
        assert "[[STAFF" not in part
        assert PRISON.duty_phone not in part


@settings(max_examples=50, deadline=None)
@given(tail=st.text(max_size=40))
def test_no_identifying_value_whatever_it_is_reaches_a_reply_without_consent(tail: str) -> None:
    secret = "§secret§" + tail  # a marker no template contains, so absence is exact
    context = full_context(
        prisoner_name=secret,
        prisoner_number=secret,
        prisoner_location=secret,
        prisoner_dob=secret,
        establishment=secret,
        concern_text=secret,
    )
    for name in NOT_CONSENTED:
        for part in parts(render_acknowledgement(name, context)):
            assert "§secret§" not in part


@pytest.mark.parametrize("name", NOT_CONSENTED)
def test_a_template_without_consent_is_never_given_identifying_values(name: str) -> None:
    given = context_for(name, full_context())
    assert set(given) <= {"reference", "prison", "submitter_name", "received_at"}
    assert given["prison"].duty_phone == ""
    assert given["prison"].name == PRISON.name


def test_no_consent_acknowledgement_follows_the_toolkit_script() -> None:
    text = render_acknowledgement("ack_no_consent", full_context()).text
    assert text.startswith("Dear Morgan Quickfall,\n")
    assert "your concern has been logged" in text
    assert "passed to the appropriate staff" in text
    assert "unable to share information about any individual without their consent" in text
    assert "0808 808 2003" in text and "116 123" in text
    assert PRISON.hotline_phone in text and PRISON.portal_url in text
    assert "Sat 14 Nov 2026 21:46 GMT" in text


def test_restricted_contact_hears_only_that_the_concern_was_logged() -> None:
    text = render_acknowledgement("ack_restricted", full_context()).text
    assert "received and logged" in text
    for absent in ("0808", "116 123", PRISON.hotline_phone, PRISON.portal_url, "Morgan"):
        assert absent not in text


def test_unverified_acknowledgement_is_safe_for_whoever_receives_it() -> None:
    text = render_acknowledgement("ack_unverified", full_context()).text
    assert text.startswith("Hello,\n")
    assert "Morgan" not in text  # the name on the form may be forged
    assert "If you did not contact us" in text
    assert PRISON.hotline_phone in text and PRISON.portal_url in text


def test_consent_acknowledgement_names_the_prisoner_and_leaves_places_for_staff() -> None:
    email = render_acknowledgement("ack_consent", full_context())
    assert PRISONER_NAME in email.text
    assert PRISONER_NUMBER not in email.text and WING not in email.text  # not declared
    markers = unfilled_markers(email.text)
    assert markers == [
        "[[STAFF: welfare check — when it was done and the outcome, or delete this line]]",
        "[[STAFF: ACCT opened or reviewed — or delete this line]]",
        "[[STAFF: referral to healthcare / mental health — or delete this line]]",
        f"[[STAFF: whether {PRISONER_NAME} has been asked to call you — or delete this line]]",
    ]
    for marker in markers:
        assert f"\n{marker}\n" in email.text  # each on its own line
    assert email.html is not None and len(unfilled_markers(email.html)) == 4


def test_wellbeing_consent_offers_only_the_wellbeing_place() -> None:
    text = render_acknowledgement("ack_consent", full_context(consent_scope="wellbeing")).text
    [marker] = unfilled_markers(text)
    assert "safe and being supported" in marker
    assert "ACCT" not in text and "healthcare" not in text


def test_consent_draft_without_recorded_consent_cannot_be_sent() -> None:
    text = render_acknowledgement("ack_consent", full_context(consent_scope="none")).text
    [marker] = unfilled_markers(text)
    assert "do not send" in marker


def test_unfilled_markers_catches_half_edited_places() -> None:
    text = (
        "Dear Morgan,\n"
        "[[STAFF: welfare check — or delete this line]]\n"
        "We checked on Jordan today.\n"
        "[[ staff: ACCT opened]]\n"
        "[[STAFF: referral to healthcare — the closing brackets were deleted\n"
    )
    assert unfilled_markers(text) == [
        "[[STAFF: welfare check — or delete this line]]",
        "[[ staff: ACCT opened]]",
        "[[STAFF: referral to healthcare — the closing brackets were deleted",
    ]
    assert unfilled_markers("All done: we checked on Jordan today. [[x]]") == []


def test_hostile_values_appear_literally_in_text_and_escaped_in_html() -> None:
    hostile = "{{ 7*7 }} <script>alert(1)</script>"
    email = render_acknowledgement(
        "ack_consent",
        full_context(submitter_name=hostile, prisoner_name=hostile, reference="R<1>\r\nBcc: x"),
    )
    assert hostile in email.text
    assert "49" not in email.text
    assert email.html is not None
    assert str(escape(hostile)) in email.html
    assert "<script>" not in email.html
    assert "{{ 7*7 }}" in email.html
    assert "\n" not in email.subject and "\r" not in email.subject


def test_missing_prison_settings_leave_no_gaps() -> None:
    bare = PrisonSettings(name="HMP Exampletown")
    for name in ACKNOWLEDGEMENTS:
        text = render_acknowledgement(name, full_context(prison=bare)).text
        assert " , " not in text and " ." not in text and "at ." not in text


def test_unknown_template_is_an_error() -> None:
    with pytest.raises(TemplateError, match="ack_nonsense"):
        render_acknowledgement("ack_nonsense", full_context())


# --- hot reload and the last good version ----------------------------------------------------


def test_edits_are_used_on_the_next_render_and_a_broken_edit_falls_back(tmp_path: Path) -> None:
    path = write(tmp_path / "replies/ack_no_consent.txt.j2", "First [{{ reference }}]\n")
    assert render_acknowledgement("ack_no_consent", full_context(), override_dir=tmp_path).text == (
        f"First [{REFERENCE}]\n"
    )

    write(path, "Second [{{ reference }}]\n")
    email = render_acknowledgement("ack_no_consent", full_context(), override_dir=tmp_path)
    assert email.text == f"Second [{REFERENCE}]\n"
    assert email.html is None  # an override of the text alone sends no stale shipped HTML
    assert rejected_templates(tmp_path) == []

    write(path, "Second [{{ reference }}] about {{ prisoner_name }}\n")
    email = render_acknowledgement("ack_no_consent", full_context(), override_dir=tmp_path)
    assert email.text == f"Second [{REFERENCE}]\n"  # the last good text, not the edit
    [problem] = rejected_templates(tmp_path)
    assert problem.file == str(path) and "'prisoner_name'" in problem.message

    write(path, "Third [{{ reference }}]\n")
    email = render_acknowledgement("ack_no_consent", full_context(), override_dir=tmp_path)
    assert email.text == f"Third [{REFERENCE}]\n"
    assert rejected_templates(tmp_path) == []


def test_a_batch_is_answered_from_one_version_and_an_edit_applies_from_the_next(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "replies/ack_no_consent.txt.j2", "First [{{ reference }}]\n")

    def text() -> str:
        return render_acknowledgement("ack_no_consent", full_context(),
                                      override_dir=tmp_path).text

    with one_version_of_templates():
        assert text() == f"First [{REFERENCE}]\n"
        write(path, "Second [{{ reference }}]\n")
        (tmp_path / "replies/ack_no_consent.subject.j2").write_text("A new subject")
        assert text() == f"First [{REFERENCE}]\n"  # mid-batch: the version it began with
    assert text() == f"Second [{REFERENCE}]\n"
    with one_version_of_templates():
        assert text() == f"Second [{REFERENCE}]\n"


def test_a_broken_include_falls_back_to_the_last_good_include_too(tmp_path: Path) -> None:
    partial = write(tmp_path / "replies/_closing.j2", "Kind regards")
    write(
        tmp_path / "replies/ack_restricted.txt.j2",
        '[{{ reference }}] {% include "replies/_closing.j2" %}\n',
    )
    first = render_acknowledgement("ack_restricted", full_context(), override_dir=tmp_path)
    assert first.text == f"[{REFERENCE}] Kind regards"
    write(partial, "Kind regards {% if %}")
    again = render_acknowledgement("ack_restricted", full_context(), override_dir=tmp_path)
    assert again.text == first.text
    [problem] = rejected_templates(tmp_path)
    assert problem.file == str(partial) and problem.line == 1


def test_broken_template_with_no_good_version_since_start_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "replies/ack_unverified.txt.j2", "Hello {{ prisoner_name }}")
    with pytest.raises(TemplateError, match=r"ack_unverified\.txt\.j2.*'prisoner_name'"):
        render_acknowledgement("ack_unverified", full_context(), override_dir=tmp_path)


def test_unchanged_files_are_not_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    render_acknowledgement("ack_no_consent", full_context())
    calls: list[Path] = []
    analyse = policy._analyse

    def counting(text: str, path: Path) -> Any:
        calls.append(path)
        return analyse(text, path)

    monkeypatch.setattr(policy, "_analyse", counting)
    render_acknowledgement("ack_no_consent", full_context())
    assert calls == []
    write(tmp_path / "replies/ack_no_consent.txt.j2", "Changed [{{ reference }}]")
    render_acknowledgement("ack_no_consent", full_context(), override_dir=tmp_path)
    assert calls == [tmp_path / "replies/ack_no_consent.txt.j2"]


# --- preview ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*sorted(ACKNOWLEDGEMENTS), "signposting", "urgent"])
def test_preview_renders_every_template_with_fictional_values(name: str) -> None:
    email = preview(name)
    assert sample_context()["reference"] in email.subject
    assert "HMP Sampletown" in email.text


def test_preview_fills_gaps_from_the_sample_and_shows_the_current_files(tmp_path: Path) -> None:
    write(tmp_path / "replies/ack_restricted.txt.j2", "Draft wording [{{ reference }}]")
    email = preview("ack_restricted", {"reference": "R-9"}, override_dir=tmp_path)
    assert email.text == "Draft wording [R-9]"


def test_preview_of_a_broken_template_is_an_error_not_an_older_version(tmp_path: Path) -> None:
    path = write(tmp_path / "replies/ack_restricted.txt.j2", "Good [{{ reference }}]")
    render_acknowledgement("ack_restricted", full_context(), override_dir=tmp_path)
    write(path, "Bad {{ prisoner_number }}")
    with pytest.raises(TemplateError, match="prisoner_number"):
        preview("ack_restricted", override_dir=tmp_path)
    assert rejected_templates(tmp_path) == []  # a preview changes nothing
