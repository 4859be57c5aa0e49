"""Languages: the catalogues are complete, the browser's preference picks one, pages say which.

The completeness test extracts every message from the code and templates with Babel, using
the project's own babel.cfg (what `make messages` runs), and compares with each shipped
catalogue: a message added in English without its translations fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from sidecar.pages.branding import PageLook
from sidecar.pages.i18n import LANGUAGES, LOCALE_DIR, language, negotiate
from sidecar.pages.render import error_page, render_page
from sidecar.signup.mail import build_verification_message
from tests.pages.test_render import the
from tests.world import open_world

ROOT = Path(__file__).resolve().parents[2]
TRANSLATED = [code for code in LANGUAGES if code != "en"]


def extracted() -> dict[str | tuple[str, ...], str]:
    """Every message of the sidecar's code and templates: msgid -> where it was found."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: dict[str | tuple[str, ...], str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map
    ):
        found.setdefault(message, f"{filename}:{lineno}")
    return found


def catalogue(code: str) -> Catalog:
    with (LOCALE_DIR / code / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=code)


def test_extraction_finds_the_pages_mails_and_error_messages() -> None:
    messages = extracted()
    # One from each kind of source, so a broken babel.cfg cannot pass as "nothing to check".
    assert "Welcome to %(desk)s" in messages  # a template
    assert "You cancelled signing in" in messages  # Python code (sign-in errors)
    assert "Your verification code for %(desk)s is:" in messages  # the mail
    assert "The service desk is unavailable" in messages  # the proxy's error pages
    assert len(messages) > 80


@pytest.mark.parametrize("code", TRANSLATED)
def test_every_message_is_translated(code: str) -> None:
    messages = extracted()
    shipped = catalogue(code)
    missing, empty = [], []
    for msgid, where in messages.items():
        entry = shipped.get(msgid)
        if entry is None:
            missing.append(f"{where}: {msgid!r}")
            continue
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if entry.fuzzy or not all(s and s.strip() for s in strings):
            empty.append(f"{where}: {msgid!r}")
    assert not missing, f"{code}: not in the catalogue (run make messages):\n" + "\n".join(missing)
    assert not empty, f"{code}: untranslated or fuzzy:\n" + "\n".join(empty)


@pytest.mark.parametrize("code", TRANSLATED)
def test_no_stale_translations_and_placeholders_match(code: str) -> None:
    messages = extracted()
    shipped = catalogue(code)
    stale = [m.id for m in shipped if m.id and m.id not in messages]
    assert not stale, f"{code}: translations of messages no longer used: {stale}"
    # Babel's own checks: python-format placeholders in each translation match the msgid.
    problems = [(m.id, [str(e) for e in errors]) for m, errors in shipped.check()]
    assert not problems, problems


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("de", "de"),
        ("de-CH", "de"),
        ("fr-CA,fr;q=0.9,en;q=0.8", "fr"),
        ("es-419, es;q=0.9", "es"),
        ("ja, de;q=0.5", "de"),  # the first shipped one in order of preference
        ("en;q=0.2, de;q=0.8", "de"),  # q-values, not the order written, decide
        ("de;q=0.5, fr;q=0.5", "de"),  # a tie keeps the order written
        ("de;q=0, fr", "fr"),  # q=0 means "not acceptable"
        ("DE-at", "de"),
        ("*", "en"),
        ("ja, zh", "en"),
        ("de;q=abc, es", "es"),  # a malformed weight is not a preference
        ("fr;q=2", "en"),  # out of range
        (";;,,,", "en"),
        ("x" * 5000, "en"),
    ],
)
def test_accept_language_negotiation(header: str | None, expected: str) -> None:
    assert negotiate(header) == expected


@pytest.mark.parametrize(
    ("code", "welcome", "send"),
    [
        ("en", "Welcome to Contoso Desk", "Send verification code"),
        ("de", "Willkommen bei Contoso Desk", "Bestätigungscode senden"),
        ("fr", "Bienvenue sur Contoso Desk", "Envoyer le code de vérification"),
        ("es", "Le damos la bienvenida a Contoso Desk", "Enviar código de verificación"),
    ],
)
def test_signup_screen_speaks_each_language(code: str, welcome: str, send: str) -> None:
    html = render_page(
        "signup.html", lang=code, desk_name="Contoso Desk", csrf_token="t", name="Ada Lovelace"
    )
    assert the(html, "html")["lang"] == code
    assert welcome in html
    assert send in html
    if code != "en":
        assert "Send verification code" not in html


@pytest.mark.parametrize(
    ("code", "attempts", "wait"),
    [
        ("en", "1 attempt left.", "You can ask for a new code in 42 seconds."),
        ("de", "Noch 1 Versuch.", "Einen neuen Code können Sie in 42 Sekunden anfordern."),
        ("fr", "Il vous reste 1 essai.", "Vous pourrez demander un nouveau code dans 42 secondes."),
        ("es", "Le queda 1 intento.", "Podrá pedir un código nuevo dentro de 42 segundos."),
    ],
)
def test_plurals_on_the_code_screen(code: str, attempts: str, wait: str) -> None:
    html = render_page(
        "signup.html",
        lang=code,
        desk_name="Desk",
        csrf_token="t",
        code_sent_to="ada@contoso.com",
        attempts_left=1,
        resend_wait=42,
    )
    assert attempts in html
    assert wait in html


def test_translated_text_still_escapes_what_it_carries() -> None:
    html = render_page(
        "signup.html",
        lang="de",
        desk_name="<b>Desk</b>",
        csrf_token="t",
        code_sent_to='ada@contoso.com"><script>x</script>',
    )
    assert "<script>x</script>" not in html
    assert "<b>Desk</b>" not in html
    assert "&lt;b&gt;Desk&lt;/b&gt;" in html
    # The markup the translation itself carries stays markup.
    assert "<strong>ada@contoso.com&#34;&gt;&lt;script&gt;x&lt;/script&gt;</strong>" in html


@pytest.mark.parametrize("code", LANGUAGES)
def test_error_page_translates_catalogue_messages(code: str) -> None:
    html = error_page(
        title="The service desk is unavailable",
        message="We could not reach the service desk. Please try again shortly.",
        status=502,
        lang=code,
        look=PageLook("Contoso Desk"),
        sign_in_url="/.sso/login?rd=/x",
    )
    translate = language(code).gettext
    assert the(html, "html")["lang"] == code
    assert translate("The service desk is unavailable") in html
    assert translate("Sign in again") in html
    if code != "en":
        assert "The service desk is unavailable" not in html


def test_error_page_shows_text_outside_the_catalogue_as_given() -> None:
    html = error_page(title="Custom", message="Already said in German.", status=400, lang="de")
    assert "Already said in German." in html
    assert the(html, "html")["lang"] == "de"


@pytest.mark.parametrize(
    ("code", "subject", "line"),
    [
        ("en", "Your TicketLog verification code for Desk", "Your verification code for Desk is:"),
        ("de", "Ihr TicketLog-Bestätigungscode für Desk", "Ihr Bestätigungscode für Desk lautet:"),
        ("fr", "Votre code de vérification TicketLog pour Desk", "Votre code de vérification pour Desk est :"),
        ("es", "Su código de verificación de TicketLog para Desk", "Su código de verificación para Desk es:"),
    ],
)  # fmt: skip
def test_mail_speaks_the_language(code: str, subject: str, line: str) -> None:
    message = build_verification_message(
        from_addr="TicketLog <no-reply@ticketlog.test>",
        to_addr="ada@contoso.com",
        display_name="Ada",
        desk_name="Desk",
        code="123456",
        code_ttl_minutes=10,
        lang=code,
    )
    assert message["Subject"] == subject
    assert message["Content-Language"] == code
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    assert line in plain.get_content()
    assert "\n123456\n" in plain.get_content()
    assert f'<html lang="{code}">' in html.get_content()


async def test_the_proxys_error_pages_are_translated_too() -> None:
    """sidecar/proxy.py writes its texts in English; error_page looks them up."""

    def dead_desk(document: dict[str, object]) -> None:
        document["tenants"][0]["upstream"] = "http://127.0.0.1:1"  # type: ignore[index]

    async with open_world(edit=dead_desk) as world:
        browser = world.browser(None)
        browser.headers["Accept-Language"] = "de"
        reply = await browser.get("/assets/app.css")
        assert reply.status == 502
        assert "Der Service Desk ist nicht erreichbar" in reply.text
        assert "Wir konnten den Service Desk nicht erreichen." in reply.text
        assert 'href="/.sso/login?rd=/assets/app.css"' in reply.text
