"""Replies: the signposting email families get and the urgent alert staff get, as rendered."""

from __future__ import annotations

import inspect
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError
from markupsafe import escape

from mailbot.config import PrisonSettings
from mailbot.errors import MailbotError
from mailbot.replies import (
    ENQUIRY_CATEGORIES,
    RenderedEmail,
    TemplateError,
    render_signposting,
    render_urgent_alert,
    template_dirs,
)
from mailbot.replies.render import SHIPPED_TEMPLATES, format_london_time, one_line_subject
from tests.forms import PRISON

HELPLINE = "0808 808 2003"
REFERENCE = "PFH-SC-20261114-0042"
HOSTILE = "He said {{ 7*7 }} and {% raw %}\r\nthen <script>alert(1)</script>\r\nBcc: x@example.com"


def signposting(category: str, **kwargs: object) -> RenderedEmail:
    return render_signposting(category=category, reference=REFERENCE, prison=PRISON, **kwargs)


def alert(**kwargs: object) -> RenderedEmail:
    values: dict[str, object] = {
        "reference": REFERENCE,
        "received_at": datetime(2026, 11, 14, 21, 46, tzinfo=UTC),
        "urgency": "threat_to_life",
        "reasons": ["text mentions suicide", "text mentions a deadline (Monday)"],
        "source": "portal_form",
        "verified": True,
        "include_text": False,
        "concern_text": "My son says he will end it tonight.",
        "prisoner_number": "A1234BC",
        "prison": PRISON,
    }
    values.update(kwargs)
    return render_urgent_alert(**values)  # type: ignore[arg-type]


def both_parts(email: RenderedEmail) -> list[str]:
    assert email.html is not None
    return [email.text, email.html]


# --- the signposting reply -------------------------------------------------------------


@pytest.mark.parametrize("category", ENQUIRY_CATEGORIES)
def test_every_enquiry_category_gets_a_complete_signposting_reply(category: str) -> None:
    email = signposting(category)
    assert email.subject == f"Your enquiry to the safer custody team [{REFERENCE}]"
    for part in both_parts(email):
        assert HELPLINE in part
        assert PRISON.hotline_phone in part
        assert PRISON.portal_url in part
        assert "If you believe someone's life is in immediate danger, call 999." in part
        assert "safer custody team at HMP Exampletown" in part
        assert REFERENCE in part


@pytest.mark.parametrize("category", ["visits", "property", "money"])
def test_visits_property_and_money_are_sent_to_the_family_service(category: str) -> None:
    email = signposting(category)
    for part in both_parts(email):
        assert f"appears to be about {category}" in part
        assert PRISON.family_service in part
    assert "complaints process" not in email.text


@pytest.mark.parametrize(
    ("category", "topic"),
    [
        ("phone_pin", "phone calls or PIN numbers"),
        ("letters", "letters or post"),
        ("release_transfer", "release or transfer"),
        ("other", "something other than someone's safety or wellbeing"),
    ],
)
def test_other_enquiries_are_sent_to_the_prison_without_invented_numbers(
    category: str, topic: str
) -> None:
    email = signposting(category)
    assert f"appears to be about {topic}" in email.text
    assert "general enquiries" in email.text
    assert PRISON.governor_address not in email.text
    # The only phone numbers are the helpline and the hotline from configuration.
    digits_runs = {token for token in email.text.replace(".", " ").split() if token.isdigit()}
    assert digits_runs <= {"0808", "808", "2003", "01234", "567890", "999"}


def test_complaint_is_sent_to_the_complaints_process_and_the_governor() -> None:
    email = signposting("complaint")
    for part in both_parts(email):
        assert "appears to be about a complaint" in part
        assert "complaints process" in part
        assert "Governor" in part
        assert str(escape(PRISON.governor_address)) in part
    assert PRISON.family_service not in email.text


def test_unknown_category_is_answered_as_other() -> None:
    assert signposting("parking") == signposting("other")
    assert signposting("{{ 7*7 }}") == signposting("other")


def test_missing_optional_settings_leave_no_gaps() -> None:
    bare = PrisonSettings(name="HMP Exampletown")
    for category in ENQUIRY_CATEGORIES:
        email = render_signposting(category=category, reference=REFERENCE, prison=bare)
        assert HELPLINE in email.text
        assert " , " not in email.text and "at ." not in email.text and " ." not in email.text


def test_signposting_cannot_be_given_prisoner_details() -> None:
    parameters = set(inspect.signature(render_signposting).parameters)
    assert parameters == {"category", "reference", "prison", "override_dir", "live"}
    assert not any("prisoner" in name or "location" in name for name in parameters)


@pytest.mark.parametrize("path", sorted((SHIPPED_TEMPLATES / "replies").glob("*.j2")))
def test_shipped_reply_templates_use_no_prisoner_variables(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    for word in ("prisoner_name", "prisoner_number", "location", "concern_text"):
        assert word not in source, f"{path.name} mentions {word}"


@pytest.mark.parametrize("category", ENQUIRY_CATEGORIES)
def test_signposting_never_confirms_where_anyone_is_held(category: str) -> None:
    text = signposting(category).text.lower()
    for phrase in ("your son", "your daughter", "is held", "is here", "the prisoner you"):
        assert phrase not in text


def test_settings_are_escaped_in_html_and_literal_in_text() -> None:
    prison = PrisonSettings(name="HMP <b>Example</b> & Co", hotline_phone="01234 567890")
    email = render_signposting(category="visits", reference="R<1>", prison=prison)
    assert "HMP <b>Example</b> & Co" in email.text
    assert email.html is not None
    assert "HMP &lt;b&gt;Example&lt;/b&gt; &amp; Co" in email.html
    assert "<b>Example" not in email.html
    assert "R&lt;1&gt;" in email.html


def test_a_portal_url_that_is_not_a_web_address_is_not_made_a_link() -> None:
    prison = PrisonSettings(name="HMP Exampletown", portal_url="javascript:alert(1)")
    html = render_signposting(category="other", reference=REFERENCE, prison=prison).html
    assert html is not None
    assert "href" not in html


# --- subjects ----------------------------------------------------------------------------


def test_subject_is_one_line_even_when_the_reference_carries_line_breaks() -> None:
    email = render_signposting(
        category="visits", reference="R1\r\nBcc: victim@example.com\u2028x", prison=PRISON
    )
    assert "\r" not in email.subject and "\n" not in email.subject
    assert "\u2028" not in email.subject
    assert email.subject == "Your enquiry to the safer custody team [R1 Bcc: victim@example.com x]"


def test_subject_is_capped_at_200_characters() -> None:
    email = render_signposting(category="visits", reference="X" * 500, prison=PRISON)
    assert len(email.subject) == 200
    assert one_line_subject("  a\n\n b \t") == "a b"


# --- the urgent alert ----------------------------------------------------------------------


def test_urgent_alert_names_reference_time_urgency_reasons_and_where_to_look() -> None:
    email = alert()
    assert email.subject == f"URGENT safer custody contact [{REFERENCE}]"
    for part in both_parts(email):
        assert "Sat 14 Nov 2026 21:46 GMT" in part
        assert "threat_to_life" in part
        assert "text mentions suicide" in part
        assert "text mentions a deadline (Monday)" in part
        assert f"mailbot concerns show {REFERENCE}" in part
        assert "mailbot export" in part
        assert "portal form, verified" in part
        assert PRISON.duty_phone in part


def test_urgent_alert_without_text_leaves_out_the_concern_and_prisoner_number() -> None:
    email = alert(include_text=False)
    for part in [email.subject, *both_parts(email)]:
        assert "end it tonight" not in part
        assert "A1234BC" not in part
    assert (
        "The text of the concern is not included in this email; see the full record." in email.text
    )


def test_urgent_alert_with_text_includes_them_literally() -> None:
    email = alert(include_text=True)
    for part in both_parts(email):
        assert "My son says he will end it tonight." in part
        assert "A1234BC" in part
        assert "not included in this email" not in part


def test_unverified_contact_is_marked_as_such() -> None:
    email = alert(verified=False, source="direct_email")
    assert "direct email, NOT verified" in email.text


def test_hostile_concern_text_is_never_evaluated() -> None:
    email = alert(
        reference="PFH-SC-1",
        include_text=True,
        concern_text=HOSTILE,
        prisoner_number="{{ 6*7 }}<i>",
    )
    assert HOSTILE in email.text
    assert "{{ 6*7 }}<i>" in email.text
    assert "49" not in email.text and "42" not in email.text
    assert email.html is not None
    assert str(escape(HOSTILE)) in email.html
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "{{ 7*7 }}" in email.html
    assert "\n" not in email.subject


def test_received_time_is_shown_in_uk_local_time() -> None:
    assert format_london_time(datetime(2026, 11, 14, 21, 46, tzinfo=UTC)) == (
        "Sat 14 Nov 2026 21:46 GMT"
    )
    assert format_london_time(datetime(2026, 7, 4, 8, 5, tzinfo=UTC)) == (
        "Sat 04 Jul 2026 09:05 BST"
    )
    # Naive times are UTC, as the database stores them.
    assert format_london_time(datetime(2026, 7, 4, 8, 5)) == "Sat 04 Jul 2026 09:05 BST"


@settings(max_examples=200, deadline=None)
@given(text=st.text(), number=st.text(max_size=20))
def test_any_concern_text_renders_verbatim_when_included(text: str, number: str) -> None:
    email = alert(include_text=True, concern_text=text, prisoner_number=number)
    assert text in email.text
    assert number in email.text
    assert email.html is not None
    assert str(escape(text)) in email.html
    assert "\n" not in email.subject and "\r" not in email.subject


@settings(max_examples=100, deadline=None)
@given(tail=st.text())
def test_any_concern_text_is_absent_when_not_included(tail: str) -> None:
    text = "§concern§" + tail  # a marker no template contains, so absence is exact
    email = alert(include_text=False, concern_text=text, prisoner_number=text)
    for part in [email.subject, *both_parts(email)]:
        assert "§concern§" not in part


# --- templates: overrides, reloading and the sandbox -------------------------------------


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    return path


def test_template_dirs_put_the_override_first(tmp_path: Path) -> None:
    assert template_dirs() == [SHIPPED_TEMPLATES]
    assert template_dirs(tmp_path) == [tmp_path.resolve(), SHIPPED_TEMPLATES]


def test_missing_override_directory_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(TemplateError, match="nope"):
        signposting("visits", override_dir=missing)


def test_override_template_wins_over_the_shipped_one(tmp_path: Path) -> None:
    write(tmp_path / "replies/signposting.subject.j2", "Re: your message [{{ reference }}]\n")
    email = signposting("visits", override_dir=tmp_path)
    assert email.subject == f"Re: your message [{REFERENCE}]"
    assert HELPLINE in email.text  # the body still comes from the shipped templates


def test_overriding_the_suggestions_changes_text_and_html(tmp_path: Path) -> None:
    shipped = (SHIPPED_TEMPLATES / "replies/_signposting_suggestions.j2").read_text()
    write(
        tmp_path / "replies/_signposting_suggestions.j2",
        shipped.replace("Please contact them and they will", "Ring them; they will"),
    )
    email = signposting("visits", override_dir=tmp_path)
    for part in both_parts(email):
        assert "Ring them; they will" in part


def test_overriding_only_the_text_body_sends_no_stale_html(tmp_path: Path) -> None:
    write(tmp_path / "replies/signposting.txt.j2", "Local wording [{{ reference }}]\n")
    email = signposting("visits", override_dir=tmp_path)
    assert email.text == f"Local wording [{REFERENCE}]\n"
    assert email.html is None


def test_edited_template_is_picked_up_without_restart(tmp_path: Path) -> None:
    path = write(tmp_path / "replies/signposting.subject.j2", "First [{{ reference }}]")
    assert signposting("visits", override_dir=tmp_path).subject.startswith("First")
    path.write_text("Second [{{ reference }}]", encoding="utf-8")
    later = path.stat().st_mtime + 5
    os.utime(path, (later, later))
    assert signposting("visits", override_dir=tmp_path).subject.startswith("Second")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ reference.__class__.__mro__[1].__subclasses__() }}",
        "{{ prison.__init__.__globals__ }}",
        "{% set x = [].append(1) %}",
    ],
)
def test_sandbox_escape_is_a_template_error(tmp_path: Path, source: str) -> None:
    # The signposting reply is rendered through the policy check, as every template is:
    # an internal attribute is refused by the check before rendering, anything else the
    # sandbox forbids by the sandbox as it runs.
    write(tmp_path / "replies/signposting.txt.j2", source)
    with pytest.raises(TemplateError) as caught:
        signposting("visits", override_dir=tmp_path)
    assert (isinstance(caught.value.__cause__, SecurityError)
            or "internal attribute" in str(caught.value))
    assert isinstance(caught.value, MailbotError)
    assert "signposting.txt.j2" in str(caught.value)


def test_unknown_variable_is_a_template_error_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path / "replies/signposting.txt.j2", "Dear {{ prisoner_name }}")
    with pytest.raises(TemplateError, match=r"signposting\.txt\.j2.*prisoner_name"):
        signposting("visits", override_dir=tmp_path)


def test_syntax_error_is_a_template_error_naming_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "alerts/urgent.txt.j2", "ok\n{% if %}")
    with pytest.raises(TemplateError, match=r"urgent\.txt\.j2(:| line )2"):
        alert(override_dir=tmp_path)


def test_a_template_cannot_see_concern_text_that_was_not_included(tmp_path: Path) -> None:
    write(tmp_path / "alerts/urgent.txt.j2", "[{{ concern_text }}|{{ prisoner_number }}]")
    email = alert(include_text=False, override_dir=tmp_path)
    assert email.text == "[|]"
