"""Understanding travelers' questions: deterministic intent matching, tolerant of typos and casual language.

``understand(text)`` normalises the text (case, accents, punctuation, chat shorthand), then scores each
intent by the phrases it contains — a phrase matches when its words appear next to each other, each
word equal to or, for words of four letters or more, within a small edit distance of the text's word.
The best score wins; ties go to the intent listed first in ``INTENTS`` (a request for a person first).
Below ``THRESHOLD`` the text is not understood (``unknown``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

UNKNOWN = "unknown"
THRESHOLD = 1.0

# Chat shorthand and common misspellings, replaced word by word before matching.
SHORTHAND = {
    "u": "you", "ur": "your", "r": "are", "pls": "please", "plz": "please", "ppl": "people", "hw": "how",
    "wen": "when", "whn": "when", "wat": "what", "wht": "what", "whats": "what is", "whens": "when is",
    "wheres": "where is", "hows": "how is", "wanna": "want to", "gotta": "got to", "gonna": "going to",
    "im": "i am", "cant": "can not", "dont": "do not", "didnt": "did not", "thx": "thanks", "ty": "thanks",
    "tnx": "thanks", "tmrw": "tomorrow", "tmr": "tomorrow", "rn": "right now", "bc": "because", "w": "with",
    "checkin": "check in", "checkout": "check out", "chekin": "check in", "chekout": "check out",
    "checkinn": "check in", "res": "reservation", "rez": "reservation", "hi5": "hi", "yo": "hey",
}

# intent → (phrase, weight). Order matters for ties: earlier wins.
INTENTS: dict[str, tuple[tuple[str, float], ...]] = {
    "human": (
        ("human", 3), ("real person", 3), ("a person", 2), ("live person", 3), ("someone real", 3),
        ("talk to someone", 3), ("speak to someone", 3), ("speak with someone", 3), ("talk to somebody", 3),
        ("agent", 3), ("representative", 3), ("operator", 3), ("support staff", 3), ("customer service", 3),
        ("customer support", 3), ("staff member", 3), ("talk to a", 1), ("speak to a", 1), ("not a bot", 3),
        ("real human", 3), ("person please", 2), ("manager", 2),
    ),
    "check_in": (
        ("check in", 2.5), ("arrive", 2), ("arrival", 2), ("get in", 1.5), ("early check", 2), ("key", 1.5),
        ("keys", 1.5), ("arriving", 2), ("get there", 1), ("move in", 1.5), ("let in", 1.5),
    ),
    "check_out": (
        ("check out", 2.5), ("leave", 2), ("leaving", 2), ("departure", 2), ("depart", 2), ("vacate", 2),
        ("late check", 2), ("out by", 1.5), ("have to go", 1.5), ("got to leave", 2), ("be out", 1.5),
    ),
    "address": (
        ("address", 3), ("where is", 1.5), ("location", 2.5), ("located", 2.5), ("directions", 2.5),
        ("how do i get", 2), ("how to get", 2), ("where exactly", 2), ("street", 2), ("find the place", 2),
        ("where are we staying", 3), ("where am i staying", 3), ("map", 1.5), ("where it is", 2),
    ),
    "guests": (
        ("guests", 2.5), ("guest", 2), ("how many people", 3), ("how many of us", 3), ("people", 1.5),
        ("persons", 2), ("party size", 3), ("how many", 1), ("headcount", 3), ("occupancy", 2),
    ),
    "requests": (
        ("request", 2.5), ("requests", 2.5), ("request to book", 3), ("approve", 2.5), ("approved", 2.5),
        ("accept my", 1.5), ("host answer", 2), ("host respond", 2), ("host reply", 2), ("answered", 1.5),
        ("declined", 2), ("denied", 2), ("pending", 1.5), ("asked to book", 2.5), ("booking request", 3),
        ("hear back", 2), ("heard back", 2),
    ),
    "offers": (
        ("offer", 2.5), ("offers", 2.5), ("expire", 2.5), ("expires", 2.5), ("expiry", 2.5), ("expiring", 2.5),
        ("deadline", 2), ("how long do i have", 2.5), ("how much time", 1.5), ("quote", 2), ("deal", 1.5),
        ("still valid", 2), ("still available", 1.5),
    ),
    "next_trip": (
        ("trip", 2), ("booking", 1.5), ("reservation", 2), ("stay", 1.2), ("upcoming", 2), ("next", 1),
        ("booked", 1.5), ("my dates", 2), ("when am i", 1.5), ("holiday", 1.5), ("vacation", 1.5),
        ("itinerary", 2), ("travel", 1),
    ),
    "help": (
        ("help", 2), ("what can you do", 3), ("what do you do", 3), ("options", 2), ("menu", 2),
        ("commands", 2), ("how does this work", 2.5), ("what can i ask", 3), ("capabilities", 2),
    ),
    "thanks": (
        ("thanks", 2), ("thank you", 2.5), ("cheers", 1.5), ("appreciate", 2), ("much obliged", 2),
        ("grateful", 2),
    ),
    "greeting": (
        ("hi", 1.2), ("hello", 1.5), ("hey", 1.2), ("good morning", 1.5), ("good evening", 1.5),
        ("good afternoon", 1.5), ("hiya", 1.5), ("howdy", 1.5), ("greetings", 1.5),
    ),
}
# Greetings and thanks only win when nothing more useful is asked.
WEAK = frozenset({"greeting", "thanks"})


@dataclass(frozen=True, slots=True)
class Match:
    intent: str
    confidence: float


def normalise(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    folded = folded.replace("'", "").replace("’", "")
    words = re.findall(r"[a-z0-9]+", folded)
    out: list[str] = []
    for word in words:
        word = re.sub(r"(.)\1{2,}", r"\1\1", word)  # "heeelllo" → "heello"
        out.extend(SHORTHAND.get(word, word).split())
    return out


@lru_cache(maxsize=65536)
def _similar(a: str, b: str) -> bool:
    if a == b:
        return True
    if min(len(a), len(b)) < 4 or abs(len(a) - len(b)) > 2:
        return False
    return _distance(a, b) <= (1 if len(b) < 8 else 2)


def _distance(a: str, b: str) -> int:
    """Damerau–Levenshtein (optimal string alignment) distance."""
    rows = [list(range(len(b) + 1))]
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def _contains(words: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return any(all(_similar(words[i + k], phrase[k]) for k in range(n)) for i in range(len(words) - n + 1))


_PHRASES = {intent: [(p.split(), w) for p, w in phrases] for intent, phrases in INTENTS.items()}


def scores(text: str) -> dict[str, float]:
    words = normalise(text)
    return {
        intent: sum(weight for phrase, weight in phrases if _contains(words, phrase))
        for intent, phrases in _PHRASES.items()
    }


def understand(text: str) -> Match:
    scored = scores(text)
    strong = {i: s for i, s in scored.items() if i not in WEAK and s >= THRESHOLD}
    pool = strong or {i: s for i, s in scored.items() if s >= THRESHOLD}
    if not pool:
        return Match(UNKNOWN, 0.0)
    order = list(INTENTS)
    best = max(pool, key=lambda i: (pool[i], -order.index(i)))
    total = sum(pool.values())
    return Match(best, round(pool[best] / total, 2) if total else 0.0)
