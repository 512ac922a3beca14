"""The languages the concierge answers in, and dates, times, numbers and money written for each, through Babel.

A :class:`Language` is one of :data:`LANGUAGES` (``en``, ``es``, ``pt``, ``fr``) with the Babel locale that formats
for it: the user's own (``pt-PT`` formats as in Portugal) or the language's default. Every function is pure and
deterministic; an unknown currency code is written with its code.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton
from babel.lists import format_list
from babel.numbers import format_currency, format_decimal, get_currency_precision

LANGUAGES = ("en", "es", "pt", "fr")
DEFAULT_LANGUAGE = "en"
# The Babel locale a language formats with when the user's own locale does not say more.
_DEFAULT_LOCALES = {"en": "en", "es": "es", "pt": "pt", "fr": "fr"}
# English keeps the service's own short dates ("Fri 20 Dec", as the notifications write them); the others follow
# their CLDR patterns ("vie, 12 de marzo", "sex., 12 de março", "ven. 12 mars").
_EN_DAY, _EN_DAY_WITH_YEAR = "EEE d MMM", "EEE d MMM y"


@dataclass(frozen=True, slots=True)
class Language:
    """An answer's language (``code``: one of :data:`LANGUAGES`) and the Babel locale that formats it."""

    code: str
    locale: Locale


@cache
def language(code: str, tag: str | None = None) -> Language:
    """The language ``code`` (one of :data:`LANGUAGES`), formatted as the BCP 47 ``tag`` says when it is a locale
    of that language Babel knows (``pt-PT``), else as the language's default."""
    locale = None
    if tag:
        try:
            parsed = Locale.parse(tag.replace("-", "_"))
            locale = parsed if parsed.language == code else None
        except (ValueError, UnknownLocaleError):
            locale = None
    return Language(code, locale or Locale.parse(_DEFAULT_LOCALES[code]))


def language_of_tag(tag: str | None) -> str | None:
    """The supported language a BCP 47 tag names ("pt-PT" → "pt"), or None (no tag, or a language not spoken)."""
    if not tag:
        return None
    code = tag.replace("_", "-").split("-", 1)[0].lower()
    return code if code in LANGUAGES else None


def choose(user_locale: str | None, detected: str | None, earlier: str | None = None) -> Language:
    """The language to answer in (SPEC §5.2): the question's ``detected`` language, else the user's ``locale`` when
    it names a supported language, else the conversation's ``earlier`` one, else English. Numbers and dates follow
    the user's locale when it is of the chosen language (pt-PT rather than pt-BR)."""
    code = detected or language_of_tag(user_locale) or earlier or DEFAULT_LANGUAGE
    return language(code if code in LANGUAGES else DEFAULT_LANGUAGE, user_locale)


def day(lang: Language, value: dt.date, today: dt.date | None = None) -> str:
    """A day for people: 'Fri 20 Dec', 'vie, 20 de diciembre', with the year when it is not ``today``'s."""
    with_year = today is not None and value.year != today.year
    if lang.code == "en":
        return format_date(value, _EN_DAY_WITH_YEAR if with_year else _EN_DAY, locale=lang.locale)
    return format_skeleton("yMMMMEd" if with_year else "MMMMEd", value, locale=lang.locale)


def clock(value: dt.time | str) -> str:
    """A time of day, 24-hour: '15:00' (the form every supported language uses)."""
    if isinstance(value, str):
        return value[:5]
    return f"{value:%H:%M}"


def money(lang: Language, cents: int, currency: str) -> str:
    """An amount in minor units as the language writes it: '$1,234.56', '1234,56 €', '1 234,56 €'."""
    code = currency.upper()
    digits = get_currency_precision(code)
    amount = Decimal(cents).scaleb(-digits) if digits else Decimal(cents)
    return format_currency(amount, code, locale=lang.locale)


def number(lang: Language, value: float | int) -> str:
    """A number as the language writes it: '1.5', '1,5'."""
    return format_decimal(value, locale=lang.locale)


def plural(lang: Language, count: int, forms: dict[str, str]) -> str:
    """``forms`` chosen by CLDR's plural rule for ``count`` ('one', 'other', …; 'other' when the rule's form is
    missing), with ``{n}`` replaced by the number."""
    form = forms.get(lang.locale.plural_form(count)) or forms["other"]
    return form.format(n=number(lang, count))


def listing(lang: Language, items: list[str]) -> str:
    """Items joined as the language joins a list: 'a, b and c', 'a, b y c', 'a, b et c'."""
    return format_list(items, locale=lang.locale) if items else ""


def local_time(moment: dt.datetime, timezone: str) -> dt.datetime:
    """A UTC instant in the property's time zone."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(ZoneInfo(timezone))


def moment(lang: Language, instant: dt.datetime, timezone: str, today: dt.date | None = None) -> str:
    """An instant where it is lived: 'Fri 20 Dec, 18:00 (Europe/Lisbon)'."""
    local = local_time(instant, timezone)
    return f"{day(lang, local.date(), today)}, {local:%H:%M} ({timezone})"
