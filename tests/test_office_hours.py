from datetime import UTC, datetime

import pytest

from mailbot.config import OfficeHoursSettings
from mailbot.reports.office_hours import in_office_hours

DEFAULT = OfficeHoursSettings()


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (datetime(2026, 11, 16, 8, 0, tzinfo=UTC), True),  # Monday 08:00 GMT
        (datetime(2026, 11, 16, 16, 59, tzinfo=UTC), True),
        (datetime(2026, 11, 16, 17, 0, tzinfo=UTC), False),
        (datetime(2026, 11, 14, 12, 0, tzinfo=UTC), False),  # Saturday
        (datetime(2026, 7, 6, 7, 30, tzinfo=UTC), True),  # 08:30 BST
        (datetime(2026, 7, 6, 16, 30, tzinfo=UTC), False),  # 17:30 BST
    ],
)
def test_office_hours_follow_london_time(moment, inside):
    assert in_office_hours(moment, DEFAULT) is inside
