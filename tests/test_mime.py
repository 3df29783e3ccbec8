"""Reading messages and their text bodies: decoded whatever the sender did, never raising."""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.parsers.mime import (
    body_text,
    header_addresses,
    header_text,
    html_to_text,
    read_message,
)
from tests.conftest import BOUNCES


def raw_part(content_type: str, cte: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"From: a@example.com\r\nSubject: test\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {cte}\r\n{extra}\r\n"
    ).encode() + body


# --- body_text -----------------------------------------------------------------------


def test_multipart_alternative_gives_both_parts_decoded():
    msg = EmailMessage()
    msg.set_content("Hello Renée\n", charset="utf-8", cte="quoted-printable")
    msg.add_alternative("<p>Hello Ren&eacute;e</p>", subtype="html", cte="base64")
    body = body_text(read_message(msg.as_bytes()))
    assert body.plain == "Hello Renée\n"
    assert body.html == "<p>Hello Ren&eacute;e</p>\n"
    assert body.problems == []


def test_mixed_containing_alternative_skips_attachments():
    outer = MIMEMultipart("mixed")
    note = MIMEText("not the body", "plain", "utf-8")
    note.add_header("Content-Disposition", "attachment", filename="note.txt")
    inner = MIMEMultipart("alternative")
    inner.attach(MIMEText("the body", "plain", "utf-8"))
    inner.attach(MIMEText("<b>the body</b>", "html", "utf-8"))
    outer.attach(note)
    outer.attach(inner)
    body = body_text(read_message(outer.as_bytes()))
    assert body.plain == "the body"
    assert body.html == "<b>the body</b>"


def test_attached_message_is_not_the_body():
    forwarded = EmailMessage()
    forwarded.set_content("the forwarded text")
    msg = EmailMessage()
    msg.set_content("my own text")
    msg.add_attachment(forwarded)
    body = body_text(read_message(msg.as_bytes()))
    assert body.plain == "my own text\n"


def test_non_text_parts_are_never_decoded():
    msg = MIMEMultipart("mixed")
    msg.attach(MIMEText("hello", "plain", "utf-8"))
    blob = MIMEApplication(b"\0" * 100, "octet-stream")

    def refuse(*args, **kwargs):
        raise AssertionError("decoded a non-text part")

    blob.get_payload = refuse  # type: ignore[method-assign]
    msg.attach(blob)
    msg.attach(MIMEText("<p>hello</p>", "html", "utf-8"))
    body = body_text(msg)
    assert (body.plain, body.html, body.problems) == ("hello", "<p>hello</p>", [])


def test_unknown_charset_is_decoded_as_utf8_and_said():
    raw = raw_part('text/plain; charset="x-foo"', "8bit", "Renée\n".encode())
    body = body_text(read_message(raw))
    assert body.plain == "Renée\n"
    assert body.problems == ["unknown charset 'x-foo' in text/plain; decoded as UTF-8"]


def test_unknown_charset_that_is_not_utf8_falls_back_to_windows_1252():
    raw = raw_part('text/plain; charset="x-foo"', "8bit", "“Renée”\n".encode("cp1252"))
    body = body_text(read_message(raw))
    assert body.plain == "“Renée”\n"
    assert body.problems == ["unknown charset 'x-foo' in text/plain; decoded as Windows-1252"]


def test_bytes_codec_named_as_charset_is_unknown_not_run():
    raw = raw_part('text/plain; charset="zlib"', "7bit", b"plain words\n")
    body = body_text(read_message(raw))
    assert body.plain == "plain words\n"
    assert body.problems == ["unknown charset 'zlib' in text/plain; decoded as UTF-8"]


def test_text_mislabelled_as_utf8_is_read_as_windows_1252():
    raw = raw_part('text/html; charset="utf-8"', "8bit", "<p>Renée</p>".encode("latin-1"))
    body = body_text(read_message(raw))
    assert body.html == "<p>Renée</p>"
    assert body.problems == ["text/html is not valid 'utf-8'; decoded as Windows-1252"]


def test_bytes_undecodable_even_as_windows_1252_end_as_latin1():
    raw = raw_part('text/plain; charset="utf-8"', "8bit", b"caf\xe9 \x81\n")
    body = body_text(read_message(raw))
    assert body.plain == "café \x81\n"
    assert body.problems == ["text/plain is not valid 'utf-8'; decoded as ISO-8859-1"]


def test_missing_charset_with_8bit_text_is_guessed_and_said():
    raw = raw_part("text/plain", "8bit", "Renée\n".encode())
    body = body_text(read_message(raw))
    assert body.plain == "Renée\n"
    assert body.problems == ["no charset declared in text/plain; decoded as UTF-8"]


def test_broken_base64_is_decoded_as_far_as_possible_and_said():
    raw = raw_part('text/plain; charset="utf-8"', "base64", b"aGVsbG8gd29y!!bGQ=x\n")
    body = body_text(read_message(raw))
    assert body.plain == "hello world"
    assert body.problems == ["damaged base64 encoding in text/plain; undecodable bytes skipped"]


def test_line_endings_are_normalised():
    raw = raw_part('text/plain; charset="utf-8"', "base64", b"b25lDQp0d28NdGhyZWUK\n")
    assert body_text(read_message(raw)).plain == "one\ntwo\nthree\n"


def test_message_without_text_parts():
    msg = MIMEMultipart("mixed")
    msg.attach(MIMEApplication(b"%PDF-1.4", "pdf"))
    assert body_text(msg) == body_text(msg).__class__(None, None, [])


def test_deeply_nested_multiparts_do_not_break_the_walk():
    raw = b"MIME-Version: 1.0\r\n"
    for depth in range(60):
        raw += f'Content-Type: multipart/mixed; boundary="b{depth}"\r\n\r\n--b{depth}\r\n'.encode()
    raw += b"Content-Type: text/plain\r\n\r\ndeep\r\n"
    body = body_text(read_message(raw))
    assert body.plain is None
    assert "MIME parts nested too deeply; inner parts skipped" in body.problems


def test_many_parts_are_bounded():
    msg = MIMEMultipart("mixed")
    for _ in range(2000):
        msg.attach(MIMEApplication(b"x", "octet-stream"))
    msg.attach(MIMEText("late", "plain"))
    started = time.perf_counter()
    body = body_text(msg)
    assert time.perf_counter() - started < 1
    assert body.plain is None
    assert body.problems == ["more than 500 MIME parts; the rest were skipped"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_body_text_never_raises_on_any_bytes(noise):
    raw = (
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + noise
        + b"\r\n--x\r\nContent-Type: text/html; charset=\xff\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + noise + b"\r\n--x--\r\n"
    )
    for candidate in (noise, raw):
        body = body_text(read_message(candidate))
        for text in (body.plain, body.html):
            assert text is None or "\r" not in text
            if text is not None:
                text.encode("utf-8")  # no surrogates left to break the store


def test_real_world_bounces_read_without_raising():
    for path in sorted(BOUNCES.iterdir()):
        msg = read_message(path.read_bytes())
        body = body_text(msg)
        assert body.plain is not None or body.html is not None, path.name
        header_text(msg, "Subject")
        header_addresses(msg, "From")


# --- headers ----------------------------------------------------------------------------


def test_raw_8bit_header_bytes_are_read_as_utf8():
    msg = read_message(
        b"From: J\xc3\xa9r\xc3\xb4me <j@example.com>\r\nSubject: caf\xc3\xa9\r\n\r\n"
    )
    assert header_text(msg, "Subject") == "café"
    assert header_addresses(msg, "From") == [("Jérôme", "j@example.com")]


def test_encoded_word_header_and_absent_header():
    msg = read_message(b"Subject: =?utf-8?q?R=C3=A9n=C3=A9e?=\r\n\r\n")
    assert header_text(msg, "Subject") == "Rénée"
    assert header_text(msg, "Reply-To") == ""
    assert header_addresses(msg, "Reply-To") == []


def test_several_addresses_in_one_header():
    msg = read_message(b"From: a@example.com, B <b@example.com>\r\n\r\n")
    assert header_addresses(msg, "From") == [("", "a@example.com"), ("B", "b@example.com")]


# --- html_to_text -------------------------------------------------------------------


def test_html_to_text_breaks_lines_at_br_and_blocks():
    html = "<div>one<br>two<br/>three</div><p>four</p><ul><li>five</li><li>six</li></ul>"
    assert html_to_text(html) == "one\ntwo\nthree\nfour\nfive\nsix"


def test_html_to_text_keeps_empty_paragraphs_as_blank_lines():
    html = "<p>Hello,</p><p>&nbsp;</p><p>My son</p><p>&nbsp;</p><p>&nbsp;</p><p>Karen</p>"
    assert html_to_text(html) == "Hello,\n\nMy son\n\nKaren"


def test_html_to_text_unescapes_entities_and_collapses_source_whitespace():
    html = "<p>Tom &amp; Jerry&#x27;s\n   &lt;b&gt;  &quot;bold&quot;&nbsp;&pound;5</p>"
    assert html_to_text(html) == 'Tom & Jerry\'s <b> "bold" £5'


def test_html_to_text_keeps_words_apart_across_inline_tags():
    assert html_to_text("<b>Hello</b> <i>world</i>,<span> again</span>") == "Hello world, again"


def test_html_to_text_drops_scripts_styles_and_comments():
    html = (
        "<html><head><title>t</title><style>p {color: red}</style></head><body>"
        "<script>alert('x')</script><!-- note -->visible</body></html>"
    )
    assert html_to_text(html) == "visible"


def test_html_to_text_keeps_preformatted_text():
    assert html_to_text("<pre>a\n  b</pre>") == "a\n  b"


def test_html_to_text_table_cells_are_separated():
    html = "<table><tr><th>Name</th><td>Jane</td></tr><tr><td>x</td></tr></table>"
    assert html_to_text(html) == "Name Jane\nx"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_html_to_text_never_raises(html):
    text = html_to_text(html)
    assert not text.endswith("\n")
