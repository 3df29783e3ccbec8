"""Replies decide what mailbot says: the signposting reply to families and staff alerts."""

from mailbot.replies.render import (
    ENQUIRY_CATEGORIES,
    RenderedEmail,
    TemplateError,
    render_signposting,
    render_urgent_alert,
    template_dirs,
)

__all__ = [
    "ENQUIRY_CATEGORIES",
    "RenderedEmail",
    "TemplateError",
    "render_signposting",
    "render_urgent_alert",
    "template_dirs",
]
