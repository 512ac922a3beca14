"""Understanding a question in English, Spanish, Portuguese or French: its intent, its language and what it refers
to — deterministic, tolerant of typos, missing accents and casual language.

``understand(text)`` reads the text once per language of :mod:`concierge.lexicon`: its words folded (case,
accents), chat shorthand expanded, and stemmed with that language's Snowball stemmer; a word of five letters or
more the lexicon does not know is corrected to the nearest word it knows within a small edit distance (rapidfuzz),
unless it is a common word of any language or an ordinary word of ``ORDINARY``. An intent scores the phrases it
contains (their words next to each other). The text's language is the one whose common words, letters and
phrases it has most of (none when nothing tells, or two tie). An urgent problem wins (``URGENT_THRESHOLD``, read
in the text's language or, when none tells, in any); otherwise the language's best intent at or above
``THRESHOLD`` (or its ``MINIMUM``) wins, ties to the intent listed first in ``INTENTS``, greetings and thanks only
when nothing else is asked — or, when nothing passes there, the best of another language. Below that the text is
not understood (``unknown``). The match carries the text's references (months,
dates, numbers, words, today or tomorrow), from which the concierge picks a trip.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache

import snowballstemmer
from babel import Locale
from rapidfuzz import process
from rapidfuzz.distance import OSA

from concierge import lexicon

UNKNOWN = "unknown"
THRESHOLD = 1.0
URGENT_THRESHOLD = 3.0
# Intents that need more than one weak signal: a thing named alone ("dishwasher") is not a question about it.
MINIMUM = {"amenity": 2.5}
# Every intent, most specific first: the order breaks ties.
INTENTS = (
    "urgent", "human", "cancellation_policy", "cancellation", "refund", "change", "payment", "check_in_info",
    "max_guests", "nights", "days_until", "price", "check_in", "check_out", "address", "guests", "trips_list",
    "requests", "offers", "next_trip", "waiting_threads", "amenities", "amenity", "pets", "smoking", "bedrooms",
    "bathrooms", "house_rules", "about", "help", "thanks", "greeting",
)
_ORDER = {intent: n for n, intent in enumerate(INTENTS)}
_STEMMERS = {"en": "english", "es": "spanish", "pt": "portuguese", "fr": "french"}

# Greetings and thanks only win when nothing more useful is asked.
WEAK = frozenset({"greeting", "thanks"})
# Asking the bot to act (or for a person) at ACTION_THRESHOLD or above outweighs any question about the records it
# names: "cancel my reservation" is not a question about the reservation.
ACTIONS = frozenset({"human", "cancellation", "change", "refund", "payment"})
ACTION_THRESHOLD = 2.5
RECORD_INTENTS = frozenset({
    "check_in", "check_out", "address", "guests", "nights", "days_until", "price", "next_trip", "trips_list",
    "requests", "offers",
})


@dataclass(frozen=True, slots=True)
class References:
    """What a text names that may pick a trip: months (1–12), dates as (year or None, month, day), standalone
    numbers, its words (folded), and ``day``: "today" or "tomorrow" when it says so."""

    months: tuple[int, ...] = ()
    dates: tuple[tuple[int | None, int, int], ...] = ()
    numbers: tuple[int, ...] = ()
    words: tuple[str, ...] = ()
    day: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """An intent of ``INTENTS`` (or ``unknown``) with its share of the evidence, the text's language (None when
    nothing tells), the amenity asked about (``topic``: a concept of ``lexicon.AMENITIES``, or ``words:`` and the
    words asked for) and the text's references."""

    intent: str
    confidence: float
    language: str | None = None
    topic: str | None = None
    references: References = field(default_factory=References)


def fold(text: str) -> str:
    """Lower case without accents: 'Dirección' → 'direccion'."""
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("œ", "oe").replace("æ", "ae"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_WORD = re.compile(r"[a-z0-9]+")
_REPEATS = re.compile(r"(.)\1{2,}")


def normalise(text: str, language: str = "en") -> list[str]:
    """The text's words as ``language`` reads them: folded, letters repeated three times or more cut to two
    ("heeelllo" → "heello"), shorthand expanded. English drops apostrophes ("what's" → "whats"); the others split
    on them ("l'adresse" → "l adresse")."""
    folded = fold(text)
    folded = re.sub(r"['’`]", "" if language == "en" else " ", folded)
    shorthand = lexicon.SHORTHAND[language]
    out: list[str] = []
    for word in _WORD.findall(folded):
        word = _REPEATS.sub(r"\1\1", word)
        out.extend(shorthand.get(word, word).split())
    return out


# --- the lexicon, compiled per language -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Phrase:
    intent: str
    words: tuple[tuple[bool, str], ...]  # (exact, word): exact compares the folded word, else the stems
    weight: float
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class _Language:
    code: str
    stem: Callable[[str], str]
    by_first_word: dict[str, tuple[_Phrase, ...]]  # a phrase by its first word: its stem, or "=word" if exact
    known: frozenset[str]  # every stem the phrases use
    targets: tuple[str, ...]  # the stems a typo may be corrected to (five letters or more), in a fixed order
    stopwords: frozenset[str]


def _compile_phrase(language: str, stem: Callable[[str], str], text: str, intent: str, weight: float,
                    topic: str | None = None) -> _Phrase:
    words: list[tuple[bool, str]] = []
    for raw in text.split():
        exact = raw.startswith("=")
        for word in normalise(raw.lstrip("="), language):
            words.append((True, word) if exact else (False, stem(word)))
    return _Phrase(intent, tuple(words), weight, topic)


@cache
def _language(code: str) -> _Language:
    stemmer = snowballstemmer.stemmer(_STEMMERS[code])
    stem: Callable[[str], str] = stemmer.stemWord
    phrases = [_compile_phrase(code, stem, text, intent, weight)
               for intent, entries in lexicon.LEXICONS[code].items() for text, weight in entries]
    phrases += [_compile_phrase(code, stem, text, "amenity", weight, concept)
                for concept, (asked, _listed, weight) in lexicon.AMENITIES.items() for text in asked]
    by_first: dict[str, list[_Phrase]] = {}
    for phrase in phrases:
        if phrase.words:
            exact, first = phrase.words[0]
            by_first.setdefault("=" + first if exact else first, []).append(phrase)
    known = frozenset(word for p in phrases for exact, word in p.words if not exact)
    return _Language(
        code, stem, {key: tuple(found) for key, found in by_first.items()}, known,
        tuple(sorted(w for w in known if len(w) >= 5)), lexicon.STOPWORDS[code],
    )


# A common word of any language is never taken for a typo (Portuguese "preciso" is not Spanish "precio").
_ALL_STOPWORDS = frozenset().union(*lexicon.STOPWORDS.values())


@lru_cache(maxsize=65536)
def _stem(code: str, word: str) -> str:
    """``word``'s stem in language ``code``, or the known stem it is a typo of (one edit for stems of five to seven
    letters, two from eight)."""
    language = _language(code)
    stem = language.stem(word)
    if (stem in language.known or len(stem) < 5 or word.isdigit() or word in _ALL_STOPWORDS
            or word in lexicon.ORDINARY[code]):
        return stem
    found = process.extractOne(stem, language.targets, scorer=OSA.distance, score_cutoff=1 if len(stem) < 8 else 2)
    return str(found[0]) if found else stem


@dataclass(slots=True)
class _Reading:
    """One language's reading of a text: its words, their stems, the intents' scores and the amenity asked."""

    words: list[str]
    scores: dict[str, float]
    topic: str | None
    evidence: float  # the weight of every phrase found


def _phrase_at(phrase: _Phrase, words: list[str], stems: list[str], start: int) -> bool:
    if start + len(phrase.words) > len(words):
        return False
    return all((words if exact else stems)[start + k] == word for k, (exact, word) in enumerate(phrase.words))


def _read(code: str, text: str) -> _Reading:
    language = _language(code)
    words = normalise(text, code)
    stems = [_stem(code, w) for w in words]
    found: dict[_Phrase, int] = {}
    for start, (word, stem) in enumerate(zip(words, stems, strict=True)):
        for key in (stem, "=" + word):
            for phrase in language.by_first_word.get(key, ()):
                if phrase not in found and _phrase_at(phrase, words, stems, start):
                    found[phrase] = start
    scores: dict[str, float] = {}
    for phrase in found:
        scores[phrase.intent] = scores.get(phrase.intent, 0.0) + phrase.weight
    concepts = sorted((p for p in found if p.topic), key=lambda p: (-p.weight, found[p]))
    topic = concepts[0].topic if concepts else None
    if topic is None and scores.get("amenity"):
        # "is there a sauna?": the words after the question, for the listing to be searched for.
        end = max(found[p] + len(p.words) for p in found if p.intent == "amenity")
        asked = [w for w in words[end:] if w not in language.stopwords and not w.isdigit()][:3]
        topic = "words:" + " ".join(asked) if asked else None
        if topic is not None:
            scores["amenity"] += 1.0
    return _Reading(words, scores, topic, sum(p.weight for p in found))


# --- the language --------------------------------------------------------------------------------


def _language_scores(text: str, readings: dict[str, _Reading]) -> dict[str, float]:
    lowered = text.lower()
    scores = {}
    for code, reading in readings.items():
        common = sum(1 / sum(w in s for s in lexicon.STOPWORDS.values())
                     for w in reading.words if w in lexicon.STOPWORDS[code])
        letters = sum(weight * lowered.count(ch) for ch, weight in lexicon.LETTERS.get(code, {}).items())
        scores[code] = common + letters + 0.5 * reading.evidence
    return scores


def _detected(scores: dict[str, float]) -> str | None:
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    best, score = ranked[0]
    if score <= 0 or (len(ranked) > 1 and ranked[1][1] == score):
        return None
    return best


def detect_language(text: str) -> str | None:
    """The language ``text`` is written in (en, es, pt, fr), or None when nothing tells or two tie."""
    readings = {code: _read(code, text) for code in _STEMMERS}
    return _detected(_language_scores(text, readings))


# --- references ----------------------------------------------------------------------------------


@cache
def _month_names() -> tuple[dict[str, int], dict[str, int]]:
    """Month names of every language, folded: (full names, abbreviations of three letters or more)."""
    full: dict[str, int] = {}
    short: dict[str, int] = {}
    for code in _STEMMERS:
        months = Locale.parse(code).months
        for context in ("format", "stand-alone"):
            for number, name in months[context]["wide"].items():
                full[fold(name)] = number
            for number, name in months[context]["abbreviated"].items():
                name = fold(name).rstrip(".")
                if len(name) >= 3 and name.isalpha():
                    short[name] = number
    full.pop("may", None)  # also a verb: "may I bring my dog?" names no month unless a day is beside it
    return full, {**short, "may": 5}


_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_NUMERIC_DATE = re.compile(r"\b(\d{1,2})[/.](\d{1,2})(?:[/.](\d{2,4}))?\b")
_ORDINAL = re.compile(r"^(\d{1,2})(?:st|nd|rd|th|er|o|a)?$")


def _valid(year: int | None, month: int, day: int) -> bool:
    return 1 <= month <= 12 and 1 <= day <= 31 and (year is None or 2000 <= year <= 2100)


def references(text: str, words: list[str]) -> References:
    """The months, dates, numbers, words and day ``text`` names; ``words`` are its words, normalised."""
    folded = fold(text)
    dates: list[tuple[int | None, int, int]] = []
    used: set[str] = set()
    for y, m, d in _ISO_DATE.findall(folded):
        if _valid(int(y), int(m), int(d)):
            dates.append((int(y), int(m), int(d)))
        used.update((y, m, d))
    for a, b, y in _NUMERIC_DATE.findall(_ISO_DATE.sub(" ", folded)):
        year = (int(y) + 2000 if len(y) == 2 else int(y)) if y else None
        for day_of_month, month_number in ((int(a), int(b)), (int(b), int(a))):  # day/month, or month/day
            if _valid(year, month_number, day_of_month) and (year, month_number, day_of_month) not in dates:
                dates.append((year, month_number, day_of_month))
        used.update((a, b, y))
    full, short = _month_names()
    months: list[int] = []
    for n, word in enumerate(words):
        month = full.get(word) or short.get(word)
        if month is None:
            continue
        beside = [words[k] for k in (n - 1, n + 1, n + 2) if 0 <= k < len(words)]
        days = [int(m.group(1)) for w in beside if (m := _ORDINAL.match(w))]
        if days and 1 <= days[0] <= 31:
            dates.append((None, month, days[0]))
            used.add(str(days[0]))
        elif word in full:
            months.append(month)
    numbers = tuple(int(w) for w in words if w.isdigit() and w not in used and len(w) <= 9)
    which_day = next((lexicon.DAY_WORDS[w] for w in words if w in lexicon.DAY_WORDS), None)
    return References(tuple(dict.fromkeys(months)), tuple(dates), numbers, tuple(words), which_day)


# --- the intent ----------------------------------------------------------------------------------


def _best(scores: dict[str, float]) -> str | None:
    passing = {i: s for i, s in scores.items() if s >= MINIMUM.get(i, THRESHOLD)}
    if any(s >= ACTION_THRESHOLD for i, s in passing.items() if i in ACTIONS):
        # "cancel my reservation" asks to act on the trip, not about it.
        passing = {i: s for i, s in passing.items() if i not in RECORD_INTENTS}
    pool = {i: s for i, s in passing.items() if i not in WEAK} or passing
    if not pool:
        return None
    return max(pool, key=lambda i: (pool[i], -_ORDER[i]))


def understand(text: str) -> Match:
    """What ``text`` asks (see the module's contract); deterministic."""
    readings = {code: _read(code, text) for code in _STEMMERS}
    language = _detected(_language_scores(text, readings))
    order = sorted(readings, key=lambda c: (c != language, -readings[c].evidence, c))
    words = readings[order[0]].words
    # An urgent problem is read in the text's language (in every language when none tells): a word of one
    # language is not taken for a near word of another ("policy", "policia").
    urgent = [c for c in order if (language is None or c == language)
              and readings[c].scores.get("urgent", 0.0) >= URGENT_THRESHOLD]
    if urgent:
        chosen, intent = urgent[0], "urgent"
    else:
        picked = next(((c, i) for c in order if (i := _best(readings[c].scores)) is not None), None)
        if picked is None:
            return Match(UNKNOWN, 0.0, language, None, references(text, words))
        chosen, intent = picked
    reading = readings[chosen]
    total = sum(s for i, s in reading.scores.items() if s >= THRESHOLD)
    confidence = round(reading.scores[intent] / total, 2) if total else 0.0
    topic = reading.topic if intent == "amenity" else None
    return Match(intent, confidence, language, topic, references(text, reading.words))
