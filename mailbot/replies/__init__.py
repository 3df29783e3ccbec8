"""Replies decide what mailbot says: signposting replies, acknowledgement drafts, alerts."""

from mailbot.replies.policy import (
    Problem,
    check_templates,
    context_for,
    preview,
    rejected_templates,
    render_acknowledgement,
    unfilled_markers,
)
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
    "Problem",
    "RenderedEmail",
    "TemplateError",
    "check_templates",
    "context_for",
    "preview",
    "rejected_templates",
    "render_acknowledgement",
    "render_signposting",
    "render_urgent_alert",
    "template_dirs",
    "unfilled_markers",
]
