"""Formatting for people: dates ("Fri 20 Dec"), times ("15:00"), money ("$1,234.00"), durations."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "AUD": "A$", "CAD": "C$", "BRL": "R$"}
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "CLP", "ISK", "HUF", "TWD", "VND"})


def day(value: dt.date, today: dt.date | None = None) -> str:
    """'Fri 20 Dec', with the year when it is not the current one: 'Mon 5 Jan 2027'."""
    text = f"{value:%a} {value.day} {value:%b}"
    if today is not None and value.year != today.year:
        text += f" {value.year}"
    return text


NEAR_DAYS = 6  # up to this many days ahead a day is counted ("in 3 days"); further, its date says it


def days_away(value: dt.date, today: dt.date) -> str | None:
    """How far ``value`` is from ``today``, in words true on ``today``: 'yesterday', 'today', 'tomorrow',
    'in 3 days' (up to NEAR_DAYS ahead); None otherwise, where only the date is to be said."""
    ahead = (value - today).days
    if ahead == -1:
        return "yesterday"
    if ahead == 0:
        return "today"
    if ahead == 1:
        return "tomorrow"
    if 1 < ahead <= NEAR_DAYS:
        return f"in {ahead} days"
    return None


def relative_day(value: dt.date, today: dt.date) -> str:
    """'today, Fri 20 Dec', 'tomorrow, Sat 21 Dec', 'in 3 days, Mon 23 Dec', 'yesterday, Thu 19 Dec', else
    'on Mon 30 Dec': ``today`` is the date where the day is lived (the property's time zone) when the text is
    written."""
    near = days_away(value, today)
    return f"{near}, {day(value, today)}" if near else f"on {day(value, today)}"


def relative_moment(moment: dt.datetime, timezone: str, today: dt.date) -> str:
    """An instant as :func:`local_moment` says it, led by how far its day is from ``today`` (the date in
    ``timezone`` when the text is written; :func:`days_away`): 'tomorrow, Sat 21 Dec at 18:00 (Europe/Lisbon)',
    else the date alone, 'Mon 30 Dec at 18:00 (Europe/Lisbon)'."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    near = days_away(moment.astimezone(ZoneInfo(timezone)).date(), today)
    absolute = local_moment(moment, timezone, today)
    return f"{near}, {absolute}" if near else absolute


def date_range(check_in: dt.date, check_out: dt.date, today: dt.date | None = None) -> str:
    nights = (check_out - check_in).days
    return f"{day(check_in, today)} – {day(check_out, today)} ({nights} night{'s' if nights != 1 else ''})"


def clock(value: dt.time | str) -> str:
    if isinstance(value, str):
        return value[:5]
    return f"{value:%H:%M}"


def money(cents: int, currency: str) -> str:
    """'$1,234.00', '€99.50', '¥12,000', '1,234.00 CHF'."""
    code = currency.upper()
    if code in ZERO_DECIMAL_CURRENCIES:
        amount = f"{cents:,}"
    else:
        amount = f"{cents // 100:,}.{cents % 100:02d}"
    symbol = CURRENCY_SYMBOLS.get(code)
    return f"{symbol}{amount}" if symbol else f"{amount} {code}"


def local_moment(moment: dt.datetime, timezone: str, today: dt.date | None = None) -> str:
    """A UTC instant shown in the property's time zone: 'Fri 20 Dec at 18:00 (Europe/Lisbon)'."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    local = moment.astimezone(ZoneInfo(timezone))
    return f"{day(local.date(), today)} at {local:%H:%M} ({timezone})"


def duration(delta: dt.timedelta) -> str:
    """'2 days 3 hours', '5 hours', '45 minutes', 'less than a minute'."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return "less than a minute"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = []
    if days:
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    if hours:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    if not days and minutes:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return " ".join(parts)


def guests(count: int) -> str:
    return f"{count} guest{'s' if count != 1 else ''}"
