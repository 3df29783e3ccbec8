"""Builds portal contact form emails in the reference format (docs/portal-form.md)."""

from __future__ import annotations

import uuid
from email.message import EmailMessage

from mailbot.config import PrisonSettings

# The prison's own settings as the reply and alert tests see them.
PRISON = PrisonSettings(
    name="HMP Exampletown",
    hotline_phone="01234 567890",
    duty_phone="01234 567891",
    portal_url="https://www.prisonersfamilies.org/safer-custody/hmp-exampletown",
    family_service="Example Families Service",
    governor_address="Governor, HMP Exampletown, 1 Prison Road, Exampletown EX1 1AA",
)
PORTAL_SENDER = "Prisoners' Families Helpline <safercustody-forms@portal.example.org>"
TRUSTED_AUTH = (
    "mx.prison.example; dkim=pass header.d=portal.example.org; "
    "spf=pass smtp.mailfrom=portal.example.org"
)
FORGED_AUTH = TRUSTED_AUTH.replace("mx.prison.example", "mx.attacker.example")


def portal_form(
    *,
    text: str = "Can you tell me what time visits start on a Sunday?",
    topic: str = "Visits",
    urgency: str = "I have a general question",
    name: str = "Sam Sample",
    email: str = "sam.sample@example.net",
    reply_to: str | None = None,
    prisoner_name: str = "Lee Sample",
    prisoner_number: str = "A1234BC",
    location: str = "C wing",
    prison: str = "HMP Exampletown",
    verified: bool = True,
    message_id: str | None = None,
    reference: str = "PFH-SC-20261114-0043",
    html: bool = True,
) -> bytes:
    body = f"""A new safer custody contact form has been submitted for {prison}.
Reference: {reference}

--- About you ---
Your name: {name}
Your email address: {email}
Your telephone number: 07700 900123
Your relationship to the prisoner: Partner
Would you like the prison to contact you?: Yes - by email

--- About the prisoner ---
Prisoner's full name: {prisoner_name}
Prisoner number: {prisoner_number}
Prisoner's date of birth: 03/02/1998
Prison: {prison}
Wing / location (if known): {location}

--- Your concern ---
How urgent is your concern?: {urgency}
What is your concern about?: {topic}
What is your concern?:
{text}

--- Consent ---
Are you happy for the prison to tell the prisoner that you contacted them?: Yes
Do you understand the prison may not be able to share information about the prisoner \
with you without their consent?: Yes

Submitted: 14/11/2026 21:46
"""
    msg = EmailMessage()
    msg["Authentication-Results"] = TRUSTED_AUTH if verified else FORGED_AUTH
    msg["From"] = PORTAL_SENDER
    msg["To"] = "safercustody.exampletown@prison.example"
    if reply_to is not None:
        msg["Reply-To"] = reply_to
    msg["Subject"] = f"Safer Custody Contact Form - {prison}"
    msg["Date"] = "Sat, 14 Nov 2026 21:46:00 +0000"
    msg["Message-ID"] = message_id or f"<form-{uuid.uuid4().hex}@portal.example.org>"
    msg.set_content(body, cte="quoted-printable")
    if html:
        import html as html_module

        rows = "".join(
            f"<tr><th>{html_module.escape(label)}</th><td>{html_module.escape(value)}</td></tr>"
            for label, value in (
                ("Your name", name),
                ("Your email address", email),
                ("What is your concern about?", topic),
                ("What is your concern?", text),
            )
        )
        msg.add_alternative(f"<html><body><table>{rows}</table></body></html>", subtype="html")
    return msg.as_bytes()
