"""Quoting: decides which part of a reply is new, so that triage reads what the family
wrote now rather than our own words quoted back at us.

Used only for replies to our emails, where the quoted part is ours: lines quoted with
`>`, and everything after the usual reply separators ("On ... wrote:",
"-----Original Message-----", an Outlook "From: ... Sent: ..." block). The stored text is
never trimmed: staff always see the whole message.
"""

from __future__ import annotations

import re

_SEPARATORS = (
    re.compile(r"^\s*-{2,}\s*original message\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^\s*on\b.{0,200}\bwrote:\s*$", re.IGNORECASE),
    re.compile(r"^\s*_{8,}\s*$"),  # Outlook's rule above the quoted header block
)
_HEADER_BLOCK = re.compile(r"^\s*from:\s.+$", re.IGNORECASE)
_HEADER_FOLLOWS = re.compile(r"^\s*(sent|date|to|subject):\s", re.IGNORECASE)


def new_text(text: str) -> str:
    """The reply's own words: quoted lines and everything after a reply separator go."""
    lines = text.splitlines()
    kept: list[str] = []
    for index, line in enumerate(lines):
        if any(pattern.match(line) for pattern in _SEPARATORS):
            break
        if _HEADER_BLOCK.match(line) and any(
            _HEADER_FOLLOWS.match(following) for following in lines[index + 1 : index + 4]
        ):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    return "\n".join(kept).strip()
