"""Office hours: decides whether a moment falls inside the safer custody team's working
hours (`[office_hours]`, default Mon-Fri 08:00-17:00 Europe/London)."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from mailbot.config import OfficeHoursSettings

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def in_office_hours(moment: datetime, settings: OfficeHoursSettings) -> bool:
    local = moment.astimezone(ZoneInfo(settings.timezone))
    if _DAYS[local.weekday()] not in settings.days:
        return False
    start, end = time.fromisoformat(settings.start), time.fromisoformat(settings.end)
    return start <= local.time().replace(tzinfo=None) < end
