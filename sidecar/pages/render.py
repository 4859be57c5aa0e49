"""Render the sidecar's own HTML pages (signup, errors, signed out).

Framework-free: the aiohttp handlers call :func:`render_page` / :func:`error_page`
and wrap the returned string in a response themselves.

Every page inlines :data:`STYLESHEET` in a ``<style>`` element and carries no
script, no outside font, image or stylesheet, so it works under the sidecar's
``default-src 'none'; style-src 'unsafe-inline'`` policy and without JavaScript.
"""

from __future__ import annotations

import functools
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

__all__ = ["STYLESHEET", "error_page", "initials", "render_page"]

_HERE = Path(__file__).resolve().parent
_TEMPLATES = _HERE / "templates"

STYLESHEET: str = (_HERE / "static" / "style.css").read_text(encoding="utf-8")
"""The CSS of every page, inlined via ``<style>`` (read once at import)."""

if "</" in STYLESHEET:  # pragma: no cover - guards against a broken edit of style.css
    raise RuntimeError("style.css must not contain '</' (it is inlined in a <style> element)")


def initials(text: object) -> str:
    """Up to two upper-case initials of a display name ("Ada Lovelace" -> "AL")."""
    if not isinstance(text, str):
        return ""
    letters = [word[0] for word in text.split() if word[:1].isalpha()]
    if not letters:
        return ""
    picked = letters[0] + (letters[-1] if len(letters) > 1 else "")
    return picked.upper()


@functools.cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(_TEMPLATES),
        # HTML is escaped; plain-text templates (*.txt, e.g. mail bodies) are not;
        # anything else errs on the safe side.
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml"),
            disabled_extensions=("txt",),
            default_for_string=True,
            default=True,
        ),
        undefined=StrictUndefined,
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["initials"] = initials
    # Trusted, static CSS: Markup keeps autoescape from mangling selectors like ">".
    env.globals["stylesheet"] = Markup(STYLESHEET)  # noqa: S704
    return env


def render_page(template: str, **context: object) -> str:
    """Render ``template`` (a file name in ``pages/templates``) with ``context``.

    HTML templates are autoescaped; a variable a template needs but that is not
    passed raises :class:`jinja2.UndefinedError`.
    """
    return _environment().get_template(template).render(**context)


def error_page(
    *,
    title: str,
    message: str,
    status: int,
    request_id: str | None = None,
    details: str | None = None,
    action_url: str | None = None,
    action_label: str | None = None,
) -> str:
    """The error page (400/403/421/429/502/503/504 ...).

    ``details`` (technical text, e.g. an AADSTS code) is shown in a collapsed
    "Technical details" section only when given; ``action_url`` becomes a button
    link labelled ``action_label`` (default "Continue"); ``request_id`` is shown as
    "Reference: ..." in small text.
    """
    return render_page(
        "error.html",
        title=title,
        message=message,
        status=status,
        request_id=request_id,
        details=details,
        action_url=action_url,
        action_label=action_label or "Continue",
    )
