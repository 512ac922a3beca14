"""CSV cells a spreadsheet will not run: the one rule every CSV the service writes applies to each cell."""

from __future__ import annotations

from typing import Any

# OWASP's CSV-injection list: a cell starting with one of these is read as a formula by spreadsheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value`` as a CSV cell that opens as text: a string starting with ``= + - @``, a tab or a carriage return
    gets a single quote in front (OWASP, "CSV Injection"); ``csv.writer`` then quotes it as it needs. Anything
    else is returned unchanged.

    The rule looks at the text only, so a negative number (or any other value) written as text starting with ``-``
    is prefixed too: a reader gets it back by dropping a leading ``'`` followed by one of those characters. So a
    writer passes every cell that may hold text from outside through here, and may leave out values it makes
    itself that cannot call anything (its own ids, times, counts) to keep them exact; JSON exports are exact.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
