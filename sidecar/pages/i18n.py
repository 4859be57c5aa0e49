"""Which language a page or mail speaks, and its gettext catalogue.

The language is the browser's preference (``Accept-Language``, RFC 9110 §12.5.4,
q-values honoured) among those shipped; English is the default and the source
language of every message. Catalogues are the gettext ``.po`` files under
``pages/locale/``, read with Babel when first needed: the text reviewed and
tested is exactly the text served, with no compiled ``.mo`` to keep in step.
"""

from __future__ import annotations

import functools
import gettext
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "LOCALE_DIR",
    "N_",
    "Language",
    "language",
    "negotiate",
]

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
DEFAULT_LANGUAGE = "en"
LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es")

# An Accept-Language header longer than this is not a browser's: only its start is read.
_MAX_HEADER = 512
_MAX_RANGES = 20


def N_(message: str) -> str:
    """Marks a message for extraction; it is translated later, where it is shown."""
    return message


@dataclass(frozen=True)
class Language:
    """One shipped language: its code (for ``<html lang>``) and its catalogue."""

    code: str
    translations: gettext.NullTranslations

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)


def _read_catalogue(code: str) -> gettext.NullTranslations:
    if code == DEFAULT_LANGUAGE:
        return gettext.NullTranslations()
    po_path = LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=code, domain=DOMAIN)
    compiled = BytesIO()
    # Fuzzy entries are drafts: they are not served (gettext's own rule).
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


@functools.cache
def language(code: str) -> Language:
    """The shipped language ``code`` (anything else: the default)."""
    if code not in LANGUAGES:
        code = DEFAULT_LANGUAGE
    return Language(code, _read_catalogue(code))


def _ranges(header: str) -> list[tuple[str, float]]:
    """The header's language ranges with their q-values, best first (stable for ties)."""
    ranges: list[tuple[str, float]] = []
    for item in header[:_MAX_HEADER].split(",")[:_MAX_RANGES]:
        tag, _, params = item.strip().partition(";")
        tag = tag.strip().lower()
        if not tag:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0  # a malformed weight counts as "not acceptable"
        if 0.0 < quality <= 1.0:
            ranges.append((tag, quality))
    ranges.sort(key=lambda pair: -pair[1])
    return ranges


@functools.lru_cache(maxsize=512)
def negotiate(header: str | None) -> str:
    """The shipped language the browser likes best; ``de-CH`` matches ``de``.

    Ranges are tried best first (RFC 4647 §3.4 lookup, by primary subtag);
    ``*`` or no match at all gives the default.
    """
    for tag, _ in _ranges(header or ""):
        primary = tag.split("-", 1)[0]
        if primary in LANGUAGES:
            return primary
        if tag == "*":
            return DEFAULT_LANGUAGE
    return DEFAULT_LANGUAGE
