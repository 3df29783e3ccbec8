"""The 72-hour clock in words and colour, as the queue and a concern show it."""

from __future__ import annotations


def time_left_words(hours: float) -> str:
    """'31 hours left', '40 minutes left', 'overdue by 4 hours', 'overdue by 3 days' (in
    days from two days late: '2759 hours' is a number nobody reads)."""
    if hours <= 0:
        late = -hours
        if late < 1:
            return f"overdue by {max(1, round(late * 60))} minutes"
        if late >= 48:
            return f"overdue by {int(late // 24)} days"
        whole = int(late)
        return f"overdue by {whole} hour{'s' if whole != 1 else ''}"
    if hours < 1:
        return f"{max(1, round(hours * 60))} minutes left"
    whole = int(hours)
    return f"{whole} hour{'s' if whole != 1 else ''} left"


def time_left_colour(hours: float) -> str:
    """A GOV.UK tag colour: red overdue or under 6 hours, orange under 24, else green."""
    return "red" if hours < 6 else "orange" if hours < 24 else "green"
