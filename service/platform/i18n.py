"""Problem texts in the user's language: ``Accept-Language: ru`` gives Russian titles, details
and field messages, anything else English; codes never change.

The catalogue is a gettext .po file (``service/platform/locale/<lang>/LC_MESSAGES/messages.po``)
read with Babel. A msgid may hold ``{placeholders}``: the English text is matched against it and
the translation filled in with the same values, so messages built with values translate too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALES = Path(__file__).resolve().parent / "locale"
SUPPORTED = ("en", "ru")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_LANGUAGE = re.compile(r"\s*([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*")


@dataclass(frozen=True)
class Catalogue:
    exact: dict[str, str]
    patterns: tuple[tuple[re.Pattern, str], ...]

    def translate(self, text: str) -> str:
        if text in self.exact:
            return self.exact[text]
        for pattern, template in self.patterns:
            match = pattern.fullmatch(text)
            if match:
                return template.format(**match.groupdict())
        return text


@cache
def catalogue(language: str) -> Catalogue | None:
    path = LOCALES / language / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return None
    with path.open("rb") as handle:
        po = read_po(handle)
    exact, patterns = {}, []
    for message in po:
        if not message.id or not message.string:
            continue
        if _PLACEHOLDER.search(message.id):
            regex = "".join(f"(?P<{part}>.+?)" if index % 2 else re.escape(part)
                            for index, part in enumerate(_PLACEHOLDER.split(message.id)))
            patterns.append((re.compile(regex, re.DOTALL), message.string))
        else:
            exact[message.id] = message.string
    return Catalogue(exact, tuple(patterns))


def language_of(accept_language: str | None) -> str:
    """The supported language the client prefers most (RFC 9110 12.5.4 q-values), else English."""
    best, best_q = "en", 0.0
    for index, part in enumerate((accept_language or "")[:256].split(",")):
        match = _LANGUAGE.fullmatch(part)
        if not match:
            continue
        try:
            q = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        language = match.group(1).lower()
        if language in SUPPORTED and q > best_q:
            best, best_q = language, q - index * 1e-6  # ties: the first listed wins
    return best


def localise_problem(body: dict, language: str) -> dict:
    """The problem document with its texts in ``language`` (codes and fields unchanged)."""
    texts = catalogue(language) if language != "en" else None
    if texts is None:
        return body
    body["title"] = texts.translate(body["title"])
    body["detail"] = texts.translate(body["detail"])
    for error in body.get("errors") or ():
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            error["message"] = texts.translate(error["message"])
    return body
