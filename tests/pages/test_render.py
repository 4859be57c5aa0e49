"""The sidecar's own pages: rendering, escaping, accessibility hooks, no outside assets."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import jinja2
import pytest

from sidecar.pages.render import STYLESHEET, error_page, initials, render_page

XSS_NAME = "<script>alert(1)</script>"
XSS_EMAIL = 'eve@contoso.com"><img src=x onerror=alert(1)>'

Element = tuple[str, dict[str, str | None]]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector


def elements(html: str, tag: str, **attrs: str) -> list[dict[str, str | None]]:
    return [
        a
        for t, a in parse(html).elements
        if t == tag and all(a.get(k) == v for k, v in attrs.items())
    ]


def the(html: str, tag: str, **attrs: str) -> dict[str, str | None]:
    found = elements(html, tag, **attrs)
    assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
    return found[0]


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", "".join(parse(html).text))


def signup_context(**overrides: object) -> dict[str, object]:
    context: dict[str, object] = {
        "desk_name": "Contoso Service Desk",
        "name": "Ada Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "claimed_email": "ada.lovelace@contoso.com",
        "typed_email": None,
        "email_locked": True,
        "csrf_token": "csrf-8Jq2v",
        "rd": "/tickets/42?tab=notes",
        "error": None,
        "code_sent_to": None,
        "resend_wait": 0,
        "attempts_left": None,
        "allowed_domains": ["contoso.com", "contoso.co.uk"],
        "signout_url": "/.sso/logout",
    }
    context.update(overrides)
    return context


STEP_ONE_LOCKED = signup_context()
STEP_ONE_TYPED = signup_context(
    claimed_email=None,
    email_locked=False,
    typed_email="ada@contoso.com",
    error="That address is not at contoso.com. Please use your work email address.",
)
STEP_TWO = signup_context(code_sent_to="ada.lovelace@contoso.com", attempts_left=5, resend_wait=45)
STEP_TWO_ERROR = signup_context(
    email_locked=False,
    claimed_email=None,
    typed_email="ada@contoso.com",
    code_sent_to="ada@contoso.com",
    attempts_left=1,
    resend_wait=0,
    error="That code is not right. Please check the email and try again.",
)


def all_pages() -> dict[str, str]:
    return {
        "signup-locked": render_page("signup.html", **STEP_ONE_LOCKED),
        "signup-typed": render_page("signup.html", **STEP_ONE_TYPED),
        "signup-code": render_page("signup.html", **STEP_TWO),
        "signup-code-error": render_page("signup.html", **STEP_TWO_ERROR),
        "signup-minimal": render_page("signup.html", desk_name="Desk", csrf_token="t"),
        "signed-out": render_page("signed_out.html", desk_name="Contoso Service Desk"),
        "error-403": error_page(
            title="You don't have access",
            message="Your organisation has not given your account access to this desk.",
            status=403,
            request_id="01HZX3Q7Y5K8M2N4P6R8T0V2W4",
            details="AADSTS50105: The signed in user is not assigned to a role.",
            action_url="/.sso/login",
            action_label="Sign in again",
        ),
        "error-503": error_page(
            title="Sign-in is temporarily unavailable",
            message="Please try again in a few minutes.",
            status=503,
        ),
    }


# --- every page ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "html"), list(all_pages().items()))
def test_every_page_is_a_self_contained_accessible_document(name: str, html: str) -> None:
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert the(html, "html")["lang"] == "en"
    assert len(elements(html, "main")) == 1
    assert len(elements(html, "h1")) == 1
    assert elements(html, "meta", name="viewport")
    assert STYLESHEET.strip() in html, "the stylesheet is inlined verbatim (not escaped)"
    assert "<script" not in html.lower()
    assert "http://" not in html
    assert "https://" not in html
    for tag, attrs in parse(html).elements:
        assert not tag.startswith("script")
        assert not any(k.startswith("on") for k in attrs), f"event handler on <{tag}>"
        assert tag != "link", "no outside stylesheet or icon"
        assert tag != "img"
        assert not (attrs.get("style") or "").count("url("), "no fetched assets"


def test_stylesheet_is_safe_to_inline() -> None:
    assert "</" not in STYLESHEET
    assert "@import" not in STYLESHEET
    assert "url(" not in STYLESHEET
    assert ":focus" in STYLESHEET


@pytest.mark.parametrize(("name", "html"), list(all_pages().items()))
def test_every_form_input_has_a_label(name: str, html: str) -> None:
    labels = {a.get("for") for a in elements(html, "label")}
    for attrs in elements(html, "input"):
        if attrs.get("type") == "hidden":
            continue
        assert attrs.get("id"), attrs
        assert attrs["id"] in labels, f"input #{attrs['id']} has no <label for>"
    for form in elements(html, "form"):
        assert form.get("method") == "post"
        assert form.get("action") in {"/.sso/signup", "/.sso/verify"}


# --- signup, step one -------------------------------------------------------------


def test_signup_step_one_with_email_from_entra_is_read_only() -> None:
    html = render_page("signup.html", **STEP_ONE_LOCKED)
    email = the(html, "input", id="email")
    assert "readonly" in email
    assert email["value"] == "ada.lovelace@contoso.com"
    assert email["name"] == "email"
    assert "required" not in email
    hint_id = email["aria-describedby"]
    assert hint_id is not None
    assert the(html, "p", id=hint_id.split()[0])
    text = text_of(html)
    assert (
        "Please do not change this address; it comes from your organisation's Microsoft account"
        in text
    )
    assert "first sign-in to Contoso Service Desk" in text
    assert "Ada Lovelace" in text
    assert the(html, "span", **{"class": "avatar", "aria-hidden": "true"})
    assert "AL" in text
    form = the(html, "form", action="/.sso/signup")
    assert form["method"] == "post"
    assert the(html, "input", type="hidden", name="csrf_token")["value"] == "csrf-8Jq2v"
    assert the(html, "input", type="hidden", name="rd")["value"] == "/tickets/42?tab=notes"
    assert "Send verification code" in text
    assert not elements(html, "form", action="/.sso/verify")
    assert the(html, "a", href="/.sso/logout")
    assert "Not you? Sign out" in text


def test_signup_step_one_without_entra_email_asks_for_a_typed_address() -> None:
    html = render_page("signup.html", **STEP_ONE_TYPED)
    email = the(html, "input", id="email")
    assert "readonly" not in email
    assert email["type"] == "email"
    assert email["name"] == "email"
    assert email["value"] == "ada@contoso.com"
    assert email["autocomplete"] == "email"
    assert "required" in email
    assert email["aria-invalid"] == "true"
    described = (email["aria-describedby"] or "").split()
    assert "form-error" in described
    assert "email-hint" in described
    assert "Please do not change this address" not in html
    hint = text_of(html)
    assert "Use your work address at contoso.com, contoso.co.uk." in hint
    assert the(html, "p", id="form-error")
    assert the(html, "div", id="messages")["aria-live"] in {"polite", "assertive"}
    assert "That address is not at contoso.com" in hint
    assert "<title>Error: " in html


def test_signup_step_one_refills_with_claimed_email_when_nothing_typed() -> None:
    html = render_page(
        "signup.html", **signup_context(email_locked=False, typed_email=None, error=None)
    )
    email = the(html, "input", id="email")
    assert email["value"] == "ada.lovelace@contoso.com"
    assert "readonly" not in email
    assert "aria-invalid" not in email
    assert "<title>Error" not in html


def test_signup_aria_live_region_is_always_present() -> None:
    html = render_page("signup.html", **STEP_ONE_LOCKED)
    region = the(html, "div", id="messages")
    assert region["aria-live"] in {"polite", "assertive"}
    assert not elements(html, "p", id="form-error")


@pytest.mark.parametrize(
    ("domains", "expected"),
    [
        (["contoso.com"], "Use your work address at contoso.com."),
        (["a.com", "b.com"], "Use your work address at a.com, b.com."),
        (["a.com", "b.com", "c.com"], "Use your work address at a.com, b.com, c.com."),
    ],
)
def test_allowed_domains_hint(domains: list[str], expected: str) -> None:
    html = render_page(
        "signup.html",
        **signup_context(email_locked=False, claimed_email=None, allowed_domains=domains),
    )
    assert expected in text_of(html)


def test_no_domains_hint_when_no_domains() -> None:
    html = render_page(
        "signup.html",
        **signup_context(email_locked=False, claimed_email=None, allowed_domains=[]),
    )
    assert "Use your work address" not in html
    assert "aria-describedby" not in str(the(html, "input", id="email"))


def test_signup_minimal_context_defaults() -> None:
    html = render_page("signup.html", desk_name="Desk", csrf_token="t")
    email = the(html, "input", id="email")
    assert email["value"] == ""
    assert "readonly" not in email
    assert not elements(html, "input", name="rd")
    assert the(html, "a", href="/.sso/logout")
    assert not elements(html, "div", **{"class": "identity"})


def test_email_locked_without_claimed_email_falls_back_to_typing() -> None:
    html = render_page("signup.html", **signup_context(claimed_email=None, email_locked=True))
    assert "readonly" not in the(html, "input", id="email")


# --- signup, step two -------------------------------------------------------------


def test_signup_step_two_code_form() -> None:
    html = render_page("signup.html", **STEP_TWO)
    text = text_of(html)
    assert "We sent a 6-digit code to ada.lovelace@contoso.com" in text
    verify = the(html, "form", action="/.sso/verify")
    assert verify["method"] == "post"
    code = the(html, "input", name="code")
    assert code["id"] == "code"
    assert code["autocomplete"] == "one-time-code"
    assert code["inputmode"] == "numeric"
    assert code["pattern"] == "[0-9]*"
    assert code["maxlength"] == "6"
    assert code["type"] == "text"
    assert "required" in code
    assert the(html, "label", **{"for": "code"})
    assert "5 attempts left" in text
    # Every form carries the CSRF token.
    tokens = elements(html, "input", type="hidden", name="csrf_token")
    assert len(tokens) == len(elements(html, "form"))
    assert all(t["value"] == "csrf-8Jq2v" for t in tokens)
    # No editable email field on step two when the email is locked.
    assert not elements(html, "input", id="email")
    assert not elements(html, "input", id="new-email")
    assert "<title>Enter your verification code" in html


def test_signup_step_two_resend_wait_message() -> None:
    html = render_page("signup.html", **STEP_TWO)
    assert "You can ask for a new code in 45 s" in text_of(html)
    slot = the(html, "div", **{"class": "resend-slot resend-slot--waiting"})
    assert slot["style"] == "--resend-wait: 45s"


def test_signup_step_two_resend_allowed() -> None:
    html = render_page("signup.html", **STEP_TWO_ERROR)
    text = text_of(html)
    assert "You can ask for a new code" not in text
    assert "Send a new code" in text
    resend = [f for f in elements(html, "form", action="/.sso/signup")]
    assert resend
    assert the(html, "input", type="hidden", name="email")["value"] == "ada@contoso.com"
    assert "1 attempt left" in text
    code = the(html, "input", name="code")
    assert code["aria-invalid"] == "true"
    assert "form-error" in (code["aria-describedby"] or "").split()
    assert "That code is not right" in text
    # Not locked: the user may send the code to a different address.
    assert the(html, "input", id="new-email")["name"] == "email"


@pytest.mark.parametrize("wait", [0, None])
def test_resend_wait_zero_or_none_allows_resend(wait: int | None) -> None:
    html = render_page(
        "signup.html", **signup_context(code_sent_to="a@contoso.com", resend_wait=wait)
    )
    assert "You can ask for a new code" not in html
    slot = the(html, "div", **{"class": "resend-slot"})
    assert "style" not in slot
    assert "Send a new code" in text_of(html)


def test_resend_wait_is_forced_to_an_integer() -> None:
    html = render_page(
        "signup.html", **signup_context(code_sent_to="a@contoso.com", resend_wait="9s;x")
    )
    assert "9s;x" not in html
    assert "You can ask for a new code" not in html
    html = render_page(
        "signup.html", **signup_context(code_sent_to="a@contoso.com", resend_wait="30")
    )
    assert "You can ask for a new code in 30 s" in text_of(html)


# --- escaping ------------------------------------------------------------------------


def hostile_signup_pages() -> list[str]:
    hostile = {
        "desk_name": XSS_NAME,
        "name": XSS_NAME,
        "given_name": XSS_NAME,
        "family_name": XSS_NAME,
        "claimed_email": XSS_EMAIL,
        "typed_email": XSS_EMAIL,
        "csrf_token": XSS_EMAIL,
        "rd": XSS_EMAIL,
        "error": XSS_NAME,
        "allowed_domains": [XSS_NAME],
        "signout_url": XSS_EMAIL,
    }
    return [
        render_page("signup.html", **signup_context(**hostile)),
        render_page("signup.html", **signup_context(**hostile, email_locked=False)),
        render_page("signup.html", **signup_context(**hostile, code_sent_to=XSS_EMAIL)),
        render_page(
            "signup.html",
            **signup_context(**hostile, code_sent_to=XSS_EMAIL, email_locked=False),
        ),
        render_page("signed_out.html", desk_name=XSS_NAME + XSS_EMAIL),
        error_page(
            title=XSS_NAME,
            message=XSS_EMAIL,
            status=400,
            request_id=XSS_EMAIL,
            details=XSS_NAME,
            action_url=XSS_EMAIL,
            action_label=XSS_NAME,
        ),
    ]


@pytest.mark.parametrize("html", hostile_signup_pages())
def test_autoescape(html: str) -> None:
    assert XSS_NAME not in html
    assert "<script" not in html.lower()
    assert '"><img' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    tags = [t for t, _ in parse(html).elements]
    assert "img" not in tags
    assert "script" not in tags
    for _, attrs in parse(html).elements:
        assert "onerror" not in attrs
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html


def test_hostile_values_round_trip_as_text() -> None:
    html = render_page("signup.html", **signup_context(name=XSS_NAME, claimed_email=XSS_EMAIL))
    assert XSS_NAME in text_of(html)
    assert the(html, "input", id="email")["value"] == XSS_EMAIL


# --- error page, signed out ------------------------------------------------------------


def test_error_page_with_everything() -> None:
    html = all_pages()["error-403"]
    text = text_of(html)
    assert "You don't have access" in text
    assert "Error 403" in text
    assert "Reference: 01HZX3Q7Y5K8M2N4P6R8T0V2W4" in text
    assert "AADSTS50105" in text
    assert the(html, "details")
    link = the(html, "a", href="/.sso/login")
    assert link["class"] == "button"
    assert "Sign in again" in text
    assert "<title>You don&#39;t have access · TicketLog</title>" in html


def test_error_page_without_details_or_action() -> None:
    html = error_page(
        title="Too many attempts",
        message="Please wait a minute.",
        status=429,
        request_id="req-123",
    )
    assert "Reference: req-123" in text_of(html)
    assert not elements(html, "details")
    assert "Technical details" not in html
    assert "None" not in html
    assert not elements(html, "a")


def test_error_page_without_request_id() -> None:
    html = all_pages()["error-503"]
    assert "Reference" not in html
    assert "None" not in html
    assert "Error 503" in text_of(html)


def test_error_page_action_default_label() -> None:
    html = error_page(title="Oops", message="m", status=502, action_url="/.sso/login")
    assert "Continue" in text_of(html)


@pytest.mark.parametrize("status", [400, 403, 421, 429, 502, 503, 504])
def test_error_page_statuses(status: int) -> None:
    html = error_page(title="T", message="M", status=status, request_id="r")
    assert f"Error {status}" in text_of(html)


def test_signed_out_page() -> None:
    html = all_pages()["signed-out"]
    assert "You have signed out of Contoso Service Desk" in text_of(html)
    assert the(html, "a", href="/.sso/login")
    assert "Sign in again" in text_of(html)


# --- strictness ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "context"),
    [
        ("signup.html", {"csrf_token": "t"}),
        ("signup.html", {"desk_name": "Desk"}),
        ("signed_out.html", {}),
        ("error.html", {"message": "m", "status": 400}),
    ],
)
def test_missing_required_variable_raises(template: str, context: dict[str, object]) -> None:
    with pytest.raises(jinja2.UndefinedError):
        render_page(template, **context)


def test_unknown_template_raises() -> None:
    with pytest.raises(jinja2.TemplateNotFound):
        render_page("nope.html")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Ada Lovelace", "AL"),
        ("ada", "A"),
        ("Jean-Luc de la Tour", "JT"),
        ("  ", ""),
        ("123 456", ""),
        (None, ""),
        ("émile zola", "ÉZ"),
    ],
)
def test_initials(value: object, expected: str) -> None:
    assert initials(value) == expected


def test_avatar_falls_back_when_name_has_no_letters() -> None:
    html = render_page("signup.html", **signup_context(name="12345"))
    assert "?" in text_of(html)
