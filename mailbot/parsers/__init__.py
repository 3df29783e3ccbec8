"""The parse stage: a recognised message becomes a `ParsedContact`.

`parse_portal_form` reads the portal's contact form, `parse_direct_email` an email a
family wrote themselves; `mime` reads raw bytes and text bodies for both.
"""

from mailbot.parsers.direct_email import parse_direct_email
from mailbot.parsers.mime import BodyText, body_text, html_to_text, read_message
from mailbot.parsers.portal_form import normalise_prisoner_number, parse_portal_form

__all__ = [
    "BodyText",
    "body_text",
    "html_to_text",
    "normalise_prisoner_number",
    "parse_direct_email",
    "parse_portal_form",
    "read_message",
]
