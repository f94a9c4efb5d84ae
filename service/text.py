"""Rules for human text (titles, names, descriptions, comments, passwords), written once as
character classes that serve both the validators and the OpenAPI patterns (ECMA-262 and
Python's ``re`` read them alike), so the document states exactly what is accepted."""

from __future__ import annotations

import re

# C0 and C1 control characters; a multi-line text may hold tab, LF and CR.
CONTROL = r"\x00-\x1f\x7f-\x9f"
CONTROL_MULTI_LINE = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
# Bidirectional embeddings, overrides and isolates: they make a text display as something
# other than what it is ("Trojan Source").
BIDI = r"\u202a-\u202e\u2066-\u2069"
# What shows nothing: white space, controls, and format characters, fillers and selectors
# (soft hyphen, zero-width spaces and joiners, word joiner, Hangul fillers, braille blank, BOM).
INVISIBLE = (r"\s" + CONTROL + BIDI + r"\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
             r"\u200b-\u200f\u2060-\u206f\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0")

HAS_CONTROL = re.compile(f"[{CONTROL}]")
HAS_CONTROL_MULTI_LINE = re.compile(f"[{CONTROL_MULTI_LINE}]")
HAS_BIDI = re.compile(f"[{BIDI}]")
_VISIBLE = re.compile(f"[^{INVISIBLE}]")


def is_blank(text: str) -> bool:
    """True when ``text`` has no visible character."""
    return _VISIBLE.search(text) is None
