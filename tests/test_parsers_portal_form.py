"""The portal form parser: every field read as the family typed it, whatever the
rendering, charset or transfer encoding, and the free text never taken for fields."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.config import DEFAULT_LABELS, from_dict
from mailbot.parsers.contact import Flag, FormParseError, ParsedContact, Source
from mailbot.parsers.mime import read_message
from mailbot.parsers.portal_form import normalise_prisoner_number, parse_portal_form
from tests.conftest import BOUNCES, SAMPLES

LONDON = ZoneInfo("Europe/London")
BASE_CONFIG = {
    "prison": {"name": "HMP Exampletown"},
    "mailbox": {"host": "localhost", "username": "u", "password_env": "X"},
    "smtp": {"host": "localhost", "from_address": "safercustody@prison.example"},
}
CONFIG = from_dict(BASE_CONFIG)
SUBMITTED = datetime(2026, 11, 14, 21, 46, tzinfo=LONDON)


def sample_message(name: str) -> EmailMessage:
    return read_message((SAMPLES / name).read_bytes())


def sample(name: str) -> ParsedContact:
    return parse_portal_form(sample_message(name), CONFIG)


# --- The reference format, rendered as the portal does (portal-form.md) -----------------

SECTIONS = (
    (
        "About you",
        (
            "submitter_name",
            "submitter_email",
            "submitter_phone",
            "relationship",
            "contact_preference",
        ),
    ),
    (
        "About the prisoner",
        ("prisoner_name", "prisoner_number", "prisoner_dob", "establishment", "location"),
    ),
    ("Your concern", ("urgency", "topic", "concern_text")),
    ("Consent", ("consent_tell_prisoner", "consent_understood")),
)

GOOD_VALUES = {
    "reference": "PFH-SC-20261114-0042",
    "submitter_name": "Jane Example",
    "submitter_email": "jane.example@example.com",
    "submitter_phone": "07700 900123",
    "relationship": "Mother",
    "contact_preference": "Yes - by phone",
    "prisoner_name": "John Example",
    "prisoner_number": "a1234bc",
    "prisoner_dob": "03/02/1998",
    "establishment": "HMP Exampletown",
    "location": "C wing",
    "urgency": "I am worried about their safety",
    "topic": "Bullying, threats or violence",
    "concern_text": "He owes money on the wing.\nHe is scared.",
    "consent_tell_prisoner": "No",
    "consent_understood": "Yes",
    "submitted": "14/11/2026 21:46",
}


def render_plain(values: dict[str, str], labels: dict[str, str] = DEFAULT_LABELS) -> str:
    lines = [
        "A new safer custody contact form has been submitted for HMP Exampletown.",
        f"{labels['reference']}: {values['reference']}",
        "",
    ]
    for section, keys in SECTIONS:
        lines.append(f"--- {section} ---")
        for key in keys:
            if key == "concern_text":
                lines.append(f"{labels[key]}:")
                lines.extend(values[key].split("\n"))
            else:
                lines.append(f"{labels[key]}: {values[key]}")
        lines.append("")
    lines.append(f"{labels['submitted']}: {values['submitted']}")
    return "\n".join(lines) + "\n"


def render_html(values: dict[str, str], labels: dict[str, str] = DEFAULT_LABELS) -> str:
    def esc(text: str) -> str:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        return html.escape(text).replace("\n", "<br>\n")

    rows = []
    for section, keys in SECTIONS:
        rows.append(f'<tr><th colspan="2">{esc(section)}</th></tr>')
        rows.extend(f"<tr><th>{esc(labels[k])}</th><td>{esc(values[k])}</td></tr>" for k in keys)
    return (
        "<html><body>\n"
        "<p>A new safer custody contact form has been submitted for HMP Exampletown.</p>\n"
        f"<p>{esc(labels['reference'])}: {esc(values['reference'])}</p>\n"
        "<table>\n" + "\n".join(rows) + "\n</table>\n"
        f"<p>{esc(labels['submitted'])}: {esc(values['submitted'])}</p>\n"
        "</body></html>\n"
    )


@dataclass
class Part:
    text: str
    charset: str = "utf-8"
    cte: str = "quoted-printable"


def build_message(plain: Part | None, html_part: Part | None, linesep: str = "\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Prisoners' Families Helpline <safercustody-forms@portal.example.org>"
    msg["To"] = "safercustody.exampletown@prison.example"
    msg["Subject"] = "Safer Custody Contact Form - HMP Exampletown"
    msg["Message-ID"] = "<test@portal.example.org>"
    first = True
    for subtype, part in (("plain", plain), ("html", html_part)):
        if part is None:
            continue
        kwargs = {"subtype": subtype, "charset": part.charset, "cte": part.cte}
        if first:
            msg.set_content(part.text, **kwargs)
            first = False
        else:
            msg.add_alternative(part.text, **kwargs)
    return msg.as_bytes(policy=policy.default.clone(linesep=linesep))


def parse(plain: str | None = None, html_text: str | None = None, config=CONFIG) -> ParsedContact:
    raw = build_message(
        Part(plain) if plain is not None else None,
        Part(html_text) if html_text is not None else None,
    )
    return parse_portal_form(read_message(raw), config)


def with_values(**changes: str) -> dict[str, str]:
    return {**GOOD_VALUES, **changes}


# --- The samples ------------------------------------------------------------------------


def test_sample_01_safety_concern_multipart():
    contact = sample("01-portal-safety-multipart.eml")
    assert contact.source is Source.PORTAL_FORM
    assert contact.subject == "Safer Custody Contact Form - HMP Exampletown"
    assert contact.portal_reference == "PFH-SC-20261114-0042"
    assert contact.submitter.name == "Jane Example"
    assert contact.submitter.email == "jane.example@example.com"
    assert contact.submitter.email_valid is True
    assert contact.submitter.phone == "07700 900123"
    assert contact.submitter.relationship == "Mother"
    assert contact.submitter.contact_preference == "Yes - by phone"
    assert contact.prisoner.name == "John Example"
    assert contact.prisoner.number == "A1234BC"
    assert contact.prisoner.number_as_typed == "a1234bc"
    assert contact.prisoner.dob == date(1998, 2, 3)
    assert contact.prisoner.dob_as_typed == "03/02/1998"
    assert contact.prisoner.establishment == "HMP Exampletown"
    assert contact.prisoner.location == "C wing"
    assert contact.urgency_choice == "I am worried about their safety"
    assert contact.topic == "Bullying, threats or violence"
    assert contact.concern_text == (
        "Hi, my son rang me tonight crying. He said he owes money on the wing\n"
        "and two lads told him he has till Monday or they will sort him out.\n"
        "He has not been out of his cell for 2 days because he is scared."
    )
    assert contact.consent_tell_prisoner == "No"
    assert contact.consent_understood == "Yes"
    assert contact.submitted_at == SUBMITTED
    assert contact.submitted_at.utcoffset() == timedelta(0)
    assert contact.flags == []
    assert contact.problems == []


def test_sample_01_html_part_alone_reads_the_same():
    msg = sample_message("01-portal-safety-multipart.eml")
    html_only = EmailMessage()
    html_only.set_content(msg.get_body(("html",)).get_content(), subtype="html")
    from_html = parse_portal_form(html_only, CONFIG)
    from_plain = parse_portal_form(msg, CONFIG)
    assert from_html.concern_text == from_plain.concern_text
    assert from_html.submitter == from_plain.submitter
    assert from_html.prisoner == from_plain.prisoner
    assert from_html.submitted_at == from_plain.submitted_at
    assert from_html.portal_reference == from_plain.portal_reference
    assert (from_html.flags, from_html.problems) == ([], [])


def test_sample_02_visits_enquiry_with_blank_optional_fields():
    contact = sample("02-portal-visits-enquiry-plain.eml")
    assert contact.portal_reference == "PFH-SC-20261114-0043"
    assert contact.submitter.name == "Sam Sample"
    assert contact.submitter.email == "sam.sample@example.net"
    assert contact.submitter.relationship == "Partner"
    assert contact.submitter.contact_preference == "Yes - by email"
    assert contact.prisoner.name == "Lee Sample"
    assert (contact.prisoner.number, contact.prisoner.number_as_typed) == ("", "")
    assert contact.prisoner.location == ""
    assert contact.urgency_choice == "I have a general question"
    assert contact.topic == "Visits"
    assert contact.concern_text == (
        "Can you tell me what time visits start on a Sunday and whether I can bring my baby?"
    )
    assert contact.consent_tell_prisoner == "Yes"
    assert contact.submitted_at == SUBMITTED
    assert (contact.flags, contact.problems) == ([], [])


def test_sample_03_html_only_latin1():
    contact = sample("03-portal-html-only-latin1.eml")
    assert contact.portal_reference == "PFH-SC-20261114-0044"
    assert contact.submitter.name == "Renée Dubois"
    assert contact.submitter.email == "renee@example.fr"
    assert contact.submitter.relationship == "Wife"
    assert contact.prisoner.name == "Paul Dubois"
    assert contact.prisoner.number == "G1029HT"
    assert contact.prisoner.number_as_typed == "G 1029 HT"
    assert contact.prisoner.dob == date(1998, 2, 3)
    assert contact.prisoner.location == ""
    assert contact.topic == "Mental health"
    assert contact.concern_text == (
        "Paul has not been himself since the transfer.\n"
        "He says he can't sleep: the noise never stops."
    )
    assert contact.submitted_at == SUBMITTED
    assert (contact.flags, contact.problems) == ([], [])


def test_sample_04_unverified_form_still_parses():
    contact = sample("04-portal-unverified.eml")
    assert contact.submitter.name == "Not Really"
    assert contact.submitter.email == "someone@elsewhere.example"
    assert contact.prisoner.number == "A1234BC"
    assert contact.topic == "Property"
    assert contact.concern_text == "Where do I send his clothes?"
    assert (contact.flags, contact.problems) == ([], [])


# --- The free text -------------------------------------------------------------------


def test_label_like_lines_in_the_free_text_stay_text_and_set_no_field():
    text = (
        "Prisoner number: Z9999ZZ\n"
        "Your name: Mallory\n"
        "Your email address: evil@z.example\n"
        "What is your concern?: this is still the text\n"
        "Submitted: 01/01/2020 10:00\n"
        "Prison: HMP Elsewhere"
    )
    for contact in (
        parse(render_plain(with_values(concern_text=text))),
        parse(html_text=render_html(with_values(concern_text=text))),
    ):
        assert contact.concern_text == text
        assert contact.prisoner.number == "A1234BC"
        assert contact.submitter.name == "Jane Example"
        assert contact.submitter.email == "jane.example@example.com"
        assert contact.submitted_at == SUBMITTED
        assert contact.flags == []


def test_section_lookalikes_in_the_free_text_are_text():
    text = "--- not a section\n---Consent---\n --- Consent ---\n-- About you --\nend"
    contact = parse(render_plain(with_values(concern_text=text)))
    assert contact.concern_text == text
    assert contact.problems == []


def test_an_exact_section_line_in_the_free_text_does_not_end_it():
    text = (
        "He wrote this:\n"
        "--- Consent ---\n"
        "Prisoner number: Z9999ZZ\n"
        "Are you happy for the prison to tell the prisoner that you contacted them?: Yes\n"
        "\n"
        "--- About you ---"
    )
    contact = parse(render_plain(with_values(concern_text=text)))
    assert contact.concern_text == text
    assert contact.prisoner.number == "A1234BC"
    assert contact.consent_tell_prisoner == "No"
    assert contact.consent_understood == "Yes"
    assert contact.submitted_at == SUBMITTED
    assert contact.flags == []
    assert contact.problems == [
        "the concern text holds a line that looks like a section heading "
        "('--- Consent ---'); it was kept as part of the text"
    ]


def test_free_text_ends_at_the_first_section_when_the_rest_is_not_all_form():
    # An unknown field after the text: the first section line ends it, as the spec says.
    plain = render_plain(GOOD_VALUES).replace(
        "Submitted:", "Preferred language: English\nSubmitted:"
    )
    contact = parse(plain)
    assert contact.concern_text == GOOD_VALUES["concern_text"]
    assert contact.consent_tell_prisoner == "No"
    assert contact.problems == ["unrecognised field 'Preferred language' ignored"]


def test_free_text_on_the_label_line_and_the_lines_after():
    plain = render_plain(GOOD_VALUES).replace(
        "What is your concern?:\n", "What is your concern?: First line.\n"
    )
    assert parse(plain).concern_text == "First line.\n" + GOOD_VALUES["concern_text"]


def test_free_text_keeps_inner_blank_lines_and_indentation_but_not_surrounding_blanks():
    text = "\n\n  indented first\n\n\tsecond: with colon  \nthird\n\n"
    contact = parse(render_plain(with_values(concern_text=text)))
    assert contact.concern_text == "  indented first\n\n\tsecond: with colon  \nthird"


def test_free_text_without_a_closing_section_runs_to_the_end():
    plain = render_plain(GOOD_VALUES).split("--- Consent ---")[0]
    contact = parse(plain)
    assert contact.concern_text == GOOD_VALUES["concern_text"]
    assert Flag.NEEDS_REVIEW in contact.flags


# --- Labels ----------------------------------------------------------------------------


def test_labels_match_whatever_the_case_spacing_colon_and_apostrophe():
    plain = (
        render_plain(GOOD_VALUES)
        .replace("Prisoner's full name:", "PRISONER\u2019S   FULL NAME :")
        .replace("Your name:", "your name:")
    )
    contact = parse(plain)
    assert contact.prisoner.name == "John Example"
    assert contact.submitter.name == "Jane Example"
    page = render_html(GOOD_VALUES).replace(
        "<th>Prisoner&#x27;s full name</th>", "<th> Prisoner\u2019s full\nname: </th>"
    )
    assert parse(html_text=page).prisoner.name == "John Example"


def test_configured_labels_are_used_instead_of_the_defaults():
    labels = {"submitter_name": "Full name", "concern_text": "Tell us what is wrong"}
    config = from_dict({**BASE_CONFIG, "portal": {"labels": labels}})
    all_labels = {**DEFAULT_LABELS, **labels}
    contact = parse(render_plain(GOOD_VALUES, all_labels), config=config)
    assert contact.submitter.name == "Jane Example"
    assert contact.concern_text == GOOD_VALUES["concern_text"]
    assert contact.flags == []
    default_form = parse(render_plain(GOOD_VALUES), config=config)
    assert default_form.submitter.name == ""
    assert Flag.NEEDS_REVIEW in default_form.flags


def test_unknown_labels_are_ignored_and_noted():
    plain = render_plain(GOOD_VALUES).replace("Your name:", "Favourite colour: blue\nYour name:")
    contact = parse(plain)
    assert contact.submitter.name == "Jane Example"
    assert contact.problems == ["unrecognised field 'Favourite colour' ignored"]
    page = render_html(GOOD_VALUES).replace(
        "<tr><th>Your name", "<tr><th>Favourite colour</th><td>blue</td></tr><tr><th>Your name"
    )
    assert parse(html_text=page).problems == ["unrecognised field 'Favourite colour' ignored"]


def test_a_repeated_field_keeps_the_first_value():
    plain = render_plain(GOOD_VALUES).replace(
        "Prison: HMP Exampletown", "Prison: HMP Exampletown\nPrisoner number: Z9999ZZ"
    )
    contact = parse(plain)
    assert contact.prisoner.number == "A1234BC"
    assert contact.problems == ["field 'Prisoner number' appears more than once; the first is used"]


def test_a_flood_of_odd_lines_gives_a_short_list_of_problems():
    odd = "".join(f"Odd {n}: x\nYour name: again\n" for n in range(1000))
    plain = render_plain(GOOD_VALUES).replace("C wing\n", "C wing\n" + odd, 1)
    contact = parse(plain)
    assert contact.submitter.name == "Jane Example"
    assert len(contact.problems) == 22
    assert contact.problems[-2:] == [
        "more unrecognised lines not listed",
        "field 'Your name' appears more than once; the first is used",
    ]


# --- Choosing the rendering -------------------------------------------------------------


def test_plain_part_is_preferred_when_both_read():
    contact = parse(
        render_plain(with_values(submitter_name="From plain")),
        render_html(with_values(submitter_name="From html")),
    )
    assert contact.submitter.name == "From plain"


def test_html_part_is_read_when_the_plain_part_is_not_a_form():
    contact = parse("Your email client cannot show this message.", render_html(GOOD_VALUES))
    assert contact.submitter.name == "Jane Example"
    assert contact.concern_text == GOOD_VALUES["concern_text"]
    assert contact.problems == ["the text/plain part has no form fields; read the HTML part"]


def test_html_without_closing_cell_tags_and_with_paragraphs_in_cells():
    page = (
        "<table><tr><th>Your name<td>Jane Example"
        "<tr><th>What is your concern?<td><p>First</p><p>Second</p>"
        "</table>"
    )
    contact = parse(html_text=page)
    assert contact.submitter.name == "Jane Example"
    assert contact.concern_text == "First\nSecond"


def test_html_values_are_unescaped_not_interpreted():
    text = "<script>alert(1)</script> & {{ 7*7 }} &amp; <b>bold</b>"
    contact = parse(html_text=render_html(with_values(concern_text=text, submitter_name=text)))
    assert contact.concern_text == text
    assert contact.submitter.name == text


# --- What is not a form -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("plain", "html_text"),
    [
        ("I am out of the office until Monday.\n", None),
        (None, "<p>Dear team, please call me.</p>"),
        ("Thanks: see you soon\n", "<table><tr><th>Name</th><td>x</td></tr></table>"),
        ("", None),
    ],
)
def test_a_body_with_no_form_fields_is_a_form_parse_error(plain, html_text):
    parts = " or ".join(
        name for name, text in (("text/plain", plain), ("text/html", html_text)) if text is not None
    )
    with pytest.raises(FormParseError) as raised:
        parse(plain, html_text)
    assert str(raised.value) == (
        f"not readable as a portal form: no field label from [portal.labels] in the {parts} part"
    )


def test_a_message_with_no_text_part_is_a_form_parse_error():
    msg = EmailMessage()
    msg.set_content(b"%PDF", maintype="application", subtype="pdf")
    with pytest.raises(FormParseError, match="it has no text part"):
        parse_portal_form(msg, CONFIG)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=1500), st.sampled_from(["text/plain", "text/html"]))
def test_property_only_form_parse_error_is_ever_raised(noise, content_type):
    head = f"Content-Type: {content_type}; charset=utf-8\r\n\r\n".encode()
    for raw in (noise, head + noise, head + render_plain(GOOD_VALUES).encode()[:600] + noise):
        try:
            contact = parse_portal_form(read_message(raw), CONFIG)
        except FormParseError:
            continue
        contact.concern_text.encode("utf-8")


def test_real_world_bounces_are_not_forms():
    for path in sorted(BOUNCES.iterdir()):
        with pytest.raises(FormParseError):
            parse_portal_form(read_message(path.read_bytes()), CONFIG)


# --- Missing fields, establishments, emails, dates --------------------------------------


def test_missing_required_fields_need_review():
    plain = "\n".join(
        line for line in render_plain(GOOD_VALUES).split("\n") if not line.startswith("Your name")
    )
    contact = parse(plain)
    assert contact.flags == [Flag.NEEDS_REVIEW]
    assert contact.problems == ["missing field 'Your name'"]


def test_blank_required_fields_need_review_and_blank_optional_ones_do_not():
    optional_blank = with_values(
        submitter_phone="", prisoner_number="", prisoner_dob="", location="", relationship=""
    )
    assert parse(render_plain(optional_blank)).flags == []
    contact = parse(render_plain(with_values(prisoner_name=" ", concern_text="\n  \n")))
    assert contact.flags == [Flag.NEEDS_REVIEW]
    assert contact.problems == ["blank field \"Prisoner's full name\", 'What is your concern?'"]


@pytest.mark.parametrize(
    ("typed", "wrong"),
    [
        ("HMP Exampletown", False),
        ("Exampletown", False),
        ("  hmp   EXAMPLETOWN ", False),
        ("H.M.P. Exampletown", False),
        ("HMP & YOI Exampletown", False),
        ("Exampletown Prison", False),
        ("", False),
        ("HMP Elsewhere", True),
        ("Exampletown Road", True),
    ],
)
def test_wrong_establishment_is_flagged_only_when_another_prison_is_named(typed, wrong):
    contact = parse(render_plain(with_values(establishment=typed)))
    assert contact.prisoner.establishment == typed.strip()
    assert (Flag.WRONG_ESTABLISHMENT in contact.flags) is wrong
    if wrong:
        assert contact.problems == [f"the form names {typed!r}, not 'HMP Exampletown'"]


@pytest.mark.parametrize(
    "typed",
    [
        "not an email",
        "a@b.com, c@d.com",
        "a@b.com; c@d.com",
        "x@y.com\r\nBcc: evil@z.com",
        "x@y.com\nBcc: evil@z.com",
        "Jane <jane@example.com>",
        "jane@",
        "jane@localhost",
    ],
)
def test_invalid_emails_are_kept_as_typed_and_flagged(typed):
    contact = parse(html_text=render_html(with_values(submitter_email=typed)))
    assert contact.submitter.email == typed.replace("\r\n", "\n")
    assert contact.submitter.email_valid is False
    assert Flag.INVALID_EMAIL in contact.flags


def test_a_crlf_email_in_the_plain_part_cannot_smuggle_a_header_line():
    plain = render_plain(with_values(submitter_email="x@y.com\r\nBcc: evil@z.com"))
    contact = parse(plain)
    assert contact.submitter.email == "x@y.com"
    assert "unrecognised field 'Bcc' ignored" in contact.problems


def test_valid_email_is_normalised():
    contact = parse(render_plain(with_values(submitter_email="Jane.Example@EXAMPLE.COM")))
    assert contact.submitter.email == "Jane.Example@example.com"
    assert contact.submitter.email_valid is True
    assert Flag.INVALID_EMAIL not in contact.flags


def test_bad_dates_are_kept_as_typed_and_noted():
    contact = parse(render_plain(with_values(prisoner_dob="31/02/1998", submitted="yesterday")))
    assert contact.prisoner.dob is None
    assert contact.prisoner.dob_as_typed == "31/02/1998"
    assert contact.submitted_at is None
    assert contact.flags == [Flag.NEEDS_REVIEW]
    assert contact.problems == [
        "date of birth '31/02/1998' is not a dd/mm/yyyy date",
        "submission time 'yesterday' is not dd/mm/yyyy HH:MM",
    ]


def test_submission_time_is_london_local_time_in_summer():
    contact = parse(render_plain(with_values(submitted="14/07/2026 09:05")))
    assert contact.submitted_at == datetime(2026, 7, 14, 8, 5, tzinfo=ZoneInfo("UTC"))


# --- Decoding -------------------------------------------------------------------------


def test_unknown_charset_is_read_and_flagged():
    raw = build_message(Part(render_plain(GOOD_VALUES), "utf-8", "8bit"), None)
    raw = raw.replace(b'charset="utf-8"', b'charset="x-unheard-of"')
    contact = parse_portal_form(read_message(raw), CONFIG)
    assert contact.submitter.name == "Jane Example"
    assert contact.flags == [Flag.DECODING_PROBLEM]
    assert contact.problems == ["unknown charset 'x-unheard-of' in text/plain; decoded as UTF-8"]


def test_broken_base64_is_read_as_far_as_possible_and_flagged():
    raw = build_message(Part(render_plain(GOOD_VALUES), "utf-8", "base64"), None)
    head, _, body = raw.partition(b"\n\n")
    raw = head + b"\n\n" + body.replace(b"\n", b"!\n", 1)
    contact = parse_portal_form(read_message(raw), CONFIG)
    assert Flag.DECODING_PROBLEM in contact.flags
    assert "damaged base64 encoding in text/plain; undecodable bytes skipped" in contact.problems


def test_nul_and_control_characters_survive_in_the_free_text():
    text = "nul \x00 here\nbell \x07 and form feed \x0c"
    raw = build_message(Part(render_plain(with_values(concern_text=text)), "utf-8", "base64"), None)
    assert parse_portal_form(read_message(raw), CONFIG).concern_text == text


# --- normalise_prisoner_number -------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("A1234BC", "A1234BC"),
        ("a1234bc", "A1234BC"),
        ("a 1234 bc", "A1234BC"),
        (" G-1029-HT ", "G1029HT"),
        ("g.1029.ht", "G1029HT"),
        ("A\u00a01234\tBC", "A1234BC"),
        ("", ""),
        ("A123BC", ""),
        ("A12345BC", ""),
        ("1234ABC", ""),
        ("AB1234C", ""),
        ("A1234BC (old)", ""),
        ("a1234bß", ""),
        ("A\u0661234BC", ""),
        ("\uff21\uff11\uff12\uff13\uff14\uff22\uff23", ""),
    ],
)
def test_normalise_prisoner_number(typed, expected):
    assert normalise_prisoner_number(typed) == expected


# --- Property: any form the portal could send reads back as typed ------------------------

# Lines a family might type that look like structure but are text.
TRICKY_LINES = [
    "Your name: Mallory",
    "Prisoner number: Z9999ZZ",
    "Your email address: evil@z.example",
    "What is your concern?: again",
    "Submitted: 01/01/2020 10:00",
    "Reference: FAKE-1",
    "Prison: HMP Elsewhere",
    "--- not a section",
    "---Consent---",
    " --- About you ---",
    "--- Consent ---",
    "--- About the prisoner ---",
    "--- Anything ---",
    "Bcc: evil@z.example",
    "{{ 7*7 }}",
    "{% raw %}",
    "<script>alert(1)</script>",
    "&lt;b&gt; &amp;",
    "=20",
    "=",
    "From the start",
    ".",
    "--===============0000000000000000000==",
    "",
    "   ",
    "\t",
]
HOSTILE = ["{{ 7*7 }}", "<script>x</script>", "'; DROP TABLE concerns; --", "=?utf-8?q?x?="]

# No control characters (email bodies carry them poorly, and the portal sends none) and
# no lone surrogates (not text). Line breaks are added by the generator where it means.
safe_char = st.characters(blacklist_categories=("Cc", "Cs"))
single_line = st.one_of(st.text(safe_char, max_size=40), st.sampled_from(HOSTILE))
free_line = st.one_of(st.text(safe_char, max_size=60), st.sampled_from(TRICKY_LINES))


@st.composite
def prisoner_numbers(draw) -> tuple[str, str]:
    letters = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    number = (
        draw(letters)
        + "".join(draw(st.sampled_from("0123456789")) for _ in range(4))
        + draw(letters)
        + draw(letters)
    )
    seps = [draw(st.sampled_from(["", "", " ", "-", "."])) for _ in range(2)]
    typed = number[0] + seps[0] + number[1:5] + seps[1] + number[5:]
    typed = draw(st.sampled_from([typed, typed.lower(), typed.upper()]))
    return typed, number


EMAILS = [
    ("jane.example@example.com", "jane.example@example.com", True),
    ("Renée@Example.FR", "Renée@example.fr", True),
    ("x@y.com\r\nBcc: evil@z.com", None, False),
    ("a@b.com, c@d.com", "a@b.com, c@d.com", False),
    ("not an email", "not an email", False),
    ("", "", False),
]
ESTABLISHMENTS = [
    ("HMP Exampletown", False),
    ("exampletown", False),
    ("", False),
    ("HMP Elsewhere", True),
]


@st.composite
def forms(draw) -> tuple[dict[str, str], dict[str, object]]:
    """Field values as typed, and what the parser should make of them."""
    values = {key: draw(single_line) for key in DEFAULT_LABELS}
    # The portal's own reference sits in a paragraph, where HTML collapses whitespace.
    values["reference"] = draw(st.text(st.characters(whitelist_categories=("L", "N", "Pd"))))
    expected: dict[str, object] = {key: value.strip() for key, value in values.items()}

    lines = draw(st.lists(free_line, max_size=8))
    values["concern_text"] = "\n".join(lines)
    stripped = list(lines)
    while stripped and not stripped[0].strip():
        stripped.pop(0)
    while stripped and not stripped[-1].strip():
        stripped.pop()
    expected["concern_text"] = "\n".join(stripped)

    typed_email, email, valid = draw(st.sampled_from(EMAILS))
    values["submitter_email"] = typed_email
    expected["email_valid"] = valid
    expected["submitter_email"] = email

    if draw(st.booleans()):
        values["prisoner_number"], expected["number"] = draw(prisoner_numbers())
    else:
        expected["number"] = normalise_prisoner_number(values["prisoner_number"])
    expected["prisoner_number"] = values["prisoner_number"].strip()

    dob = draw(st.one_of(st.none(), st.dates(date(1900, 1, 1), date(2030, 12, 31))))
    values["prisoner_dob"] = "" if dob is None else dob.strftime("%d/%m/%Y")
    expected["dob"] = dob
    moment = draw(st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1)))
    values["submitted"] = moment.strftime("%d/%m/%Y %H:%M")
    expected["submitted_at"] = moment.replace(second=0, microsecond=0, tzinfo=LONDON)

    values["establishment"], expected["wrong_establishment"] = draw(st.sampled_from(ESTABLISHMENTS))
    expected["establishment"] = values["establishment"]
    return values, expected


def encodable(text: str, charset: str) -> bool:
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        return False
    return True


@st.composite
def parts(draw, text: str) -> Part:
    charset = draw(st.sampled_from(["utf-8", "iso-8859-1", "windows-1252"]))
    if not encodable(text, charset):
        charset = "utf-8"
    return Part(text, charset, draw(st.sampled_from(["quoted-printable", "base64", "8bit"])))


def assert_reads_back(contact: ParsedContact, expected: dict[str, object]) -> None:
    assert contact.concern_text == expected["concern_text"]
    assert contact.portal_reference == expected["reference"]
    assert contact.submitter.name == expected["submitter_name"]
    assert contact.submitter.phone == expected["submitter_phone"]
    assert contact.submitter.relationship == expected["relationship"]
    assert contact.submitter.contact_preference == expected["contact_preference"]
    assert contact.submitter.email_valid is expected["email_valid"]
    if expected["submitter_email"] is not None:
        assert contact.submitter.email == expected["submitter_email"]
    assert (Flag.INVALID_EMAIL in contact.flags) is (
        not expected["email_valid"] and expected["submitter_email"] != ""
    )
    assert contact.prisoner.name == expected["prisoner_name"]
    assert contact.prisoner.number == expected["number"]
    assert contact.prisoner.number_as_typed == expected["prisoner_number"]
    assert contact.prisoner.dob == expected["dob"]
    assert contact.prisoner.establishment == expected["establishment"]
    assert contact.prisoner.location == expected["location"]
    assert (Flag.WRONG_ESTABLISHMENT in contact.flags) is expected["wrong_establishment"]
    assert contact.urgency_choice == expected["urgency"]
    assert contact.topic == expected["topic"]
    assert contact.consent_tell_prisoner == expected["consent_tell_prisoner"]
    assert contact.consent_understood == expected["consent_understood"]
    assert contact.submitted_at == expected["submitted_at"]
    assert contact.submitted_at.tzinfo is LONDON
    required_blank = any(
        expected[key] in ("", None)
        for key in (
            "reference",
            "submitter_name",
            "submitter_email",
            "contact_preference",
            "prisoner_name",
            "establishment",
            "urgency",
            "topic",
            "concern_text",
            "consent_tell_prisoner",
            "consent_understood",
        )
    )
    assert (Flag.NEEDS_REVIEW in contact.flags) is required_blank
    assert Flag.DECODING_PROBLEM not in contact.flags


PROPERTY_SETTINGS = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(data=st.data(), form=forms())
def test_property_plain_rendering_reads_back(data, form):
    values, expected = form
    if expected["submitter_email"] is None:  # a CRLF value cannot be one plain line
        values["submitter_email"], expected["submitter_email"] = "", ""
    plain = data.draw(parts(render_plain(values)))
    html_part = data.draw(st.one_of(st.none(), parts(render_html(values))))
    raw = build_message(plain, html_part, data.draw(st.sampled_from(["\n", "\r\n"])))
    assert_reads_back(parse_portal_form(read_message(raw), CONFIG), expected)


@PROPERTY_SETTINGS
@given(data=st.data(), form=forms())
def test_property_html_rendering_reads_back(data, form):
    values, expected = form
    if expected["submitter_email"] is None:
        expected["submitter_email"] = "x@y.com\nBcc: evil@z.com"
    html_part = data.draw(parts(render_html(values)))
    raw = build_message(None, html_part, data.draw(st.sampled_from(["\n", "\r\n"])))
    assert_reads_back(parse_portal_form(read_message(raw), CONFIG), expected)
