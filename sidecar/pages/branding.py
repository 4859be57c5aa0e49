"""A tenant's look on the sidecar's pages: desk name, logo, accent colour, support contact.

The logo is embedded in the page as a ``data:`` URI, the only image source the pages'
Content-Security-Policy allows (``img-src data:``), so a page never fetches anything.
An SVG shown through ``<img>`` runs no script and loads nothing (SVG Integration,
"secure animated mode"), whatever the file holds.
"""

from __future__ import annotations

import base64
import functools
import os
from dataclasses import dataclass
from pathlib import Path

from sidecar.config.model import TenantConfig

MAX_LOGO_BYTES = 64 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class LogoError(ValueError):
    """The logo file cannot be used; the message says why, for check-config."""


@dataclass(frozen=True)
class PageLook:
    """What a page shows of the desk it belongs to."""

    desk_name: str
    logo_data_uri: str | None = None
    accent_color: str | None = None
    support_contact: str | None = None


# Before a tenant is known (an unknown host): the TicketLog wordmark and no desk name.
DEFAULT_LOOK = PageLook(desk_name="")


def read_logo(path: str) -> tuple[str, bytes]:
    """The logo's media type and bytes; LogoError when it is not a PNG or SVG of 64 KiB or less."""
    try:
        with Path(path).open("rb") as logo:
            data = logo.read(MAX_LOGO_BYTES + 1)
    except OSError as exc:
        raise LogoError(f"cannot read {path}: {exc.strerror or 'unreadable'}") from None
    if len(data) > MAX_LOGO_BYTES:
        raise LogoError(f"{path} is larger than 64 KiB (it is embedded in every page)")
    if data.startswith(_PNG_SIGNATURE):
        return "image/png", data
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<svg", b"<?xml", b"<!--", b"<!doctype svg")) and b"<svg" in head:
        return "image/svg+xml", data
    raise LogoError(f"{path} is neither a PNG nor an SVG image")


@functools.lru_cache(maxsize=64)
def _data_uri(path: str, _mtime_ns: int, _size: int) -> str | None:
    try:
        media_type, data = read_logo(path)
    except LogoError:
        return None  # check-config reported it; a page is never refused for its logo
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def logo_data_uri(path: str) -> str | None:
    """The logo as a data: URI, read again only when the file changes."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _data_uri(path, stat.st_mtime_ns, stat.st_size)


def look_of(tenant: TenantConfig | None) -> PageLook:
    if tenant is None:
        return DEFAULT_LOOK
    branding = tenant.branding
    if branding is None:
        return PageLook(desk_name=tenant.display_name)
    return PageLook(
        desk_name=tenant.display_name,
        logo_data_uri=logo_data_uri(branding.logo_file) if branding.logo_file else None,
        accent_color=branding.accent_color,
        support_contact=branding.support_contact,
    )
