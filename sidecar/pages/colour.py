"""Colour contrast by WCAG 2.2 (§1.4.3 Contrast (Minimum), and its definitions of
relative luminance and contrast ratio): how check-config judges a tenant's accent
colour, which carries white button text and links on white."""

from __future__ import annotations

import re

# Level AA for normal-size text.
AA_NORMAL_TEXT = 4.5
WHITE = "#ffffff"
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def parse_hex_colour(value: str) -> str:
    """``#rgb`` or ``#rrggbb`` as lower-case ``#rrggbb``; ValueError for anything else.

    Only this form is accepted, so the value can be written into the pages' CSS
    without any way to end the declaration (CSS injection).
    """
    if not _HEX.match(value):
        raise ValueError("not a colour in #rrggbb form")
    digits = value[1:].lower()
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return "#" + digits


def relative_luminance(colour: str) -> float:
    digits = parse_hex_colour(colour)[1:]
    channels = []
    for i in (0, 2, 4):
        srgb = int(digits[i : i + 2], 16) / 255
        channels.append(srgb / 12.92 if srgb <= 0.04045 else ((srgb + 0.055) / 1.055) ** 2.4)
    red, green, blue = channels
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(first: str, second: str) -> float:
    """(L1 + 0.05) / (L2 + 0.05), the lighter colour's luminance on top: 1 to 21."""
    a, b = relative_luminance(first), relative_luminance(second)
    lighter, darker = max(a, b), min(a, b)
    return (lighter + 0.05) / (darker + 0.05)
