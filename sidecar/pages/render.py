"""Render the sidecar's own HTML pages (signup, errors, signed out).

Framework-free: the aiohttp handlers call :func:`render_page` / :func:`error_page`
and wrap the returned string in a response themselves.

Every page inlines :data:`STYLESHEET` in a ``<style>`` element and carries no
script, no outside font, image or stylesheet, so it works under the sidecar's
``default-src 'none'; style-src 'unsafe-inline'; img-src data:`` policy and
without JavaScript.

Pages are rendered in one of the shipped languages (:mod:`sidecar.pages.i18n`):
templates mark their text with ``_()`` / ``{% trans %}``, and ``<html lang>``
names the language used. A tenant's look (:class:`PageLook`) gives the desk's
name, logo, accent colour and support contact.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from sidecar import routes
from sidecar.pages.branding import DEFAULT_LOOK, PageLook
from sidecar.pages.i18n import DEFAULT_LANGUAGE, language

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
def _environment(lang: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(_TEMPLATES),
        extensions=["jinja2.ext.i18n"],
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
    # `{% trans %}` blocks are one line of text in the catalogue whatever the template's
    # line breaks (babel.cfg extracts them the same way).
    env.policies["ext.i18n.trimmed"] = True
    # Trusted, static CSS: Markup keeps autoescape from mangling selectors like ">".
    env.globals["stylesheet"] = Markup(STYLESHEET)  # noqa: S704
    # The templates link and post to the sidecar's own routes by these names.
    env.globals["routes"] = routes
    # newstyle: `_("... %(name)s", name=x)` escapes x and fails loudly on a missing one.
    env.install_gettext_translations(  # type: ignore[attr-defined]
        language(lang).translations, newstyle=True
    )
    return env


def render_page(
    template: str, *, lang: str = DEFAULT_LANGUAGE, look: PageLook = DEFAULT_LOOK, **context: object
) -> str:
    """Render ``template`` (a file name in ``pages/templates``) with ``context``, in the
    language ``lang`` and with the tenant's ``look``.

    HTML templates are autoescaped; a variable a template needs but that is not
    passed raises :class:`jinja2.UndefinedError`.
    """
    code = language(lang).code
    if look.desk_name:
        context.setdefault("desk_name", look.desk_name)
    return _environment(code).get_template(template).render(lang=code, look=look, **context)


def error_page(
    *,
    title: str,
    message: str,
    status: int,
    message_args: Mapping[str, object] | None = None,
    request_id: str | None = None,
    details: str | None = None,
    action_url: str | None = None,
    action_label: str | None = None,
    sign_in_url: str | None = None,
    lang: str = DEFAULT_LANGUAGE,
    look: PageLook = DEFAULT_LOOK,
) -> str:
    """The error page (400/403/421/429/502/503/504 ...), in ``lang``.

    ``title`` and ``message`` are English catalogue messages, translated here (text
    not in the catalogue is shown as given); a message holding ``%(name)s`` placeholders
    is filled in from ``message_args`` after translation. ``details`` (technical text, e.g. an
    AADSTS code) is shown in a collapsed "Technical details" section only when
    given; ``action_url`` becomes a button link labelled ``action_label`` (default
    "Continue"); ``sign_in_url`` becomes "Sign in again"; ``request_id`` is shown as
    "Reference: ..." in small text. The page names the desk and, when the tenant
    set one, its support contact.
    """
    translate = language(lang).gettext
    shown = translate(message)
    if message_args is not None:
        shown = shown % message_args
    return render_page(
        "error.html",
        lang=lang,
        look=look,
        title=translate(title),
        message=shown,
        status=status,
        request_id=request_id,
        details=details,
        action_url=action_url,
        action_label=translate(action_label or "Continue"),
        sign_in_url=sign_in_url,
    )
