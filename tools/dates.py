"""Calendar arithmetic the domain shares (lease terms)."""

from __future__ import annotations

import datetime as dt


def add_months(day: dt.date, months: int) -> dt.date:
    """`day` moved `months` calendar months on; a day past the 28th becomes the 28th, so every month has it."""
    month = day.month - 1 + months
    return day.replace(year=day.year + month // 12, month=month % 12 + 1, day=min(day.day, 28))
