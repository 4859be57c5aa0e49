"""`/.sso/signup` and `/.sso/verify`: the first-login screen and its emailed code.

Entra's `email` claim is mutable and, for single-tenant apps, not necessarily
verified (entra-reference "Email verification"; the nOAuth flaw), so an
account, and the address the desk receives, exist only after the user proved
they read mail at that address. With an email claim the address is fixed
(the seed: users must not alter it); without one the user types it.

Every POST carries a CSRF token bound to the session (OWASP CSRF Prevention:
synchronizer token). Each POST answers with a redirect (Post/Redirect/Get);
an error is kept for the GET it redirects to, which shows the form again with
it, so the browser's history never holds a POST. A double click does no harm: a second "send"
inside the cooldown for the same address is treated as the first, and a
second "verify" after success lands like the first.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sidecar import logs, metrics, routes, sign_in
from sidecar.auth.context import SSO, SsoServices
from sidecar.auth.redirects import safe_redirect_target
from sidecar.auth.signup_screen import email_is_fixed, render_signup
from sidecar.pages import error_pages
from sidecar.pages.i18n import DEFAULT_LANGUAGE, N_, Language, language
from sidecar.request_scope import SCOPE, RequestScope
from sidecar.responses import (
    error_response,
    is_navigation,
    login_required,
    page_language,
    redirect,
)
from sidecar.sign_in import SignInState
from sidecar.sign_in.storage import SessionRecord
from sidecar.signup import (
    Account,
    InvalidEmail,
    IssuedCode,
    MailError,
    SendRefused,
    build_verification_message,
    domain_allowed,
    normalize_typed_email,
)

# How long the outcome of a form POST waits for the GET that shows it (PRG).
FLASH_TTL = 300.0
_MAX_KEPT_INPUT = 320


@dataclass(frozen=True)
class _Flash:
    """What a form POST answered, shown by the GET it redirects to (Post/Redirect/Get):
    the status, an error or a notice (already in the user's language), and the address
    the user typed, which stays in the field when it was refused."""

    status: int = 200
    error: str | None = None
    notice: str | None = None
    typed_email: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(
            {"s": self.status, "e": self.error, "n": self.notice, "t": self.typed_email}
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes | None) -> _Flash:
        try:
            data = json.loads(raw) if raw else {}
            return cls(int(data["s"]), data["e"], data["n"], data["t"])
        except (ValueError, KeyError, TypeError):
            return cls()


def _flash_key(session: SessionRecord) -> str:
    return "signup-flash:" + session.key


async def _answer(
    request: web.Request,
    session: SessionRecord,
    rd: str,
    *,
    status: int,
    error: str | None = None,
    notice: str | None = None,
    typed_email: str | None = None,
) -> web.StreamResponse:
    """Answer a form POST with 303 to the screen, which then shows this outcome: the
    browser's history holds only GETs, so Back or a reload never asks to resend a form."""
    flash = _Flash(status, error, notice, typed_email[:_MAX_KEPT_INPUT] if typed_email else None)
    await request.app[SSO].store.set(_flash_key(session), flash.to_json(), FLASH_TTL)
    return redirect(routes.signup_url(rd), 303)


def _needs_signup(state: SignInState) -> bool:
    return state.account is None or state.email_change_pending


async def _guard(
    request: web.Request, state: SignInState, rd: str, *, post: bool
) -> web.StreamResponse | None:
    """The answer when this request may not use the signup routes, else None."""
    ctx = request[SCOPE]
    if state.session is None:
        if is_navigation(request):
            return redirect(routes.login_url(rd))
        return login_required(routes.login_url(rd))
    if post:
        form = await request.post()
        token = str(form.get("csrf_token", ""))
        # SECURITY: CSRF: the token is an HMAC of this session's id (synchronizer token).
        if not token or not request.app[SSO].keys.csrf_valid(state.session.key, token):
            logs.warning("csrf_refused", request_id=ctx.request_id, path=request.path)
            return error_response(
                request,
                error_pages.SIGNUP_FORM_EXPIRED,
                action_url=routes.signup_url(rd),
                force_html=True,
                rd=rd,
            )
    return None


async def _rd_of(request: web.Request) -> str:
    if request.method == "POST":
        form = await request.post()
        if "rd" in form:
            return safe_redirect_target(str(form["rd"]))
    return safe_redirect_target(request.query.get("rd"))


@dataclass(frozen=True)
class _Admitted:
    state: SignInState
    session: SessionRecord
    rd: str


async def _admit(request: web.Request, *, post: bool) -> _Admitted | web.StreamResponse:
    """The signed-in user of a signup route, or the answer that turns the request away."""
    rd = await _rd_of(request)
    state = await sign_in.load(request)
    refused = await _guard(request, state, rd, post=post)
    if refused is not None:
        return refused
    assert state.session is not None
    return _Admitted(state, state.session, rd)


async def signup_page(request: web.Request) -> web.StreamResponse:
    admitted = await _admit(request, post=False)
    if isinstance(admitted, web.StreamResponse):
        return admitted
    if not _needs_signup(admitted.state):
        return redirect(admitted.rd, 303)
    raw = await request.app[SSO].store.take(_flash_key(admitted.session))
    flash = _Flash.from_json(raw)
    return await render_signup(
        request,
        admitted.state,
        admitted.rd,
        status=flash.status,
        error=flash.error,
        notice=flash.notice,
        typed_email=flash.typed_email,
    )


async def verify_page(request: web.Request) -> web.StreamResponse:
    """`/.sso/verify` opened by GET (a bookmark, Back, a reload): back to the screen."""
    return redirect(routes.signup_url(safe_redirect_target(request.query.get("rd"))), 303)


def _email_problem(lang: Language, problem: InvalidEmail) -> str:
    """The refusal in the user's language; the email library's own wording is English
    only, so other languages get the general sentence."""
    translated = lang.gettext(problem.message)
    if translated == problem.message and lang.code != DEFAULT_LANGUAGE:
        return lang.gettext(N_("That is not a valid email address."))
    return translated


async def send_code(request: web.Request) -> web.StreamResponse:
    ctx = request[SCOPE]
    sso = request.app[SSO]
    admitted = await _admit(request, post=True)
    if isinstance(admitted, web.StreamResponse):
        return admitted
    state, session, rd = admitted.state, admitted.session, admitted.rd
    if not _needs_signup(state):
        return redirect(rd, 303)
    lang = language(page_language(request))
    _ = lang.gettext
    host = ctx.tenant.host
    form = await request.post()
    typed = str(form.get("email", ""))
    if email_is_fixed(state):
        assert state.claimed_email is not None
        email = state.claimed_email
    else:
        try:
            email = normalize_typed_email(
                typed, allow_test_domains=sso.allow_reserved_email_domains
            )
        except InvalidEmail as exc:
            return await _answer(
                request,
                session,
                rd,
                status=400,
                error=_email_problem(lang, exc),
                typed_email=typed.strip(),
            )
    allowed = ctx.tenant.config.allowed_email_domains
    if not domain_allowed(email, allowed):
        message = _("Please use your work address at %(domains)s.") % {
            "domains": ", ".join(allowed)
        }
        return await _answer(
            request, session, rd, status=400, error=message, typed_email=typed.strip()
        )
    replaced = await sso.codes.pending_email(host, session.user_key)

    async def deliver(issued: IssuedCode) -> None:
        message = build_verification_message(
            from_addr=sso.mail_from,
            to_addr=email,
            display_name=session.name,
            desk_name=ctx.tenant.config.display_name,
            code=issued.code,
            code_ttl_minutes=issued.ttl_minutes,
            lang=lang.code,
        )
        await sso.mailer.send(message)

    try:
        await sso.codes.send_new_code(host, session.user_key, email, ctx.client_ip, deliver)
    except ValueError:
        # Nothing a user can fix by retrying (an address the mail layer refuses).
        return await _answer(
            request,
            session,
            rd,
            status=400,
            error=_("We cannot send mail to this address."),
            typed_email=typed.strip(),
        )
    except SendRefused as exc:
        if exc.reason == "cooldown" and await _is_double_click(
            sso, host, session.user_key, email, exc
        ):
            # The first send of a double click stands: show its page, not an error.
            return redirect(routes.signup_url(rd), 303)
        metrics.CODES_SEND_FAILED.labels(host, exc.reason).inc()
        logs.warning(
            "verification_code_refused",
            request_id=ctx.request_id,
            tenant=host,
            user=session.user_key,
            reason=exc.reason,
        )
        if exc.retry_after < 120:
            seconds = int(exc.retry_after) + 1
            wait = lang.ngettext("%(n)s second", "%(n)s seconds", seconds) % {"n": seconds}
        else:
            minutes = max(1, int(exc.retry_after // 60 + 1))
            wait = lang.ngettext("%(n)s minute", "%(n)s minutes", minutes) % {"n": minutes}
        return await _answer(
            request,
            session,
            rd,
            status=429,
            error=_("Too many codes were requested. Please try again in %(wait)s.")
            % {"wait": wait},
            typed_email=typed.strip() or email,
        )
    except MailError as exc:
        metrics.CODES_SEND_FAILED.labels(host, "smtp").inc()
        logs.error(
            "verification_mail_failed",
            request_id=ctx.request_id,
            tenant=host,
            user=session.user_key,
            reason=str(exc),
        )
        return await _answer(
            request,
            session,
            rd,
            status=503,
            error=_("We could not send the code just now. Please try again in a moment."),
            typed_email=typed.strip() or email,
        )
    metrics.CODES_SENT.labels(host).inc()
    logs.event(
        "verification_code_sent", request_id=ctx.request_id, tenant=host, user=session.user_key
    )
    if replaced is None:
        return redirect(routes.signup_url(rd), 303)
    # A resend (or a new address): say so, since the screen itself looks the same.
    notice = _("A new code was sent to %(email)s. Codes sent before it no longer work.") % {
        "email": email
    }
    return await _answer(request, session, rd, status=200, notice=notice)


# A second send this soon after the first is a double click rather than a resend.
DOUBLE_CLICK_WINDOW = 5.0


async def _is_double_click(
    sso: SsoServices, host: str, user_key: str, email: str, refusal: SendRefused
) -> bool:
    pending = await sso.codes.pending_email(host, user_key)
    if pending is not None:
        return pending == email
    # The first send may still be on its way to the SMTP server (its code is not
    # pending yet): judge by how fresh the cooldown is.
    return refusal.retry_after > sso.codes.policy.resend_cooldown - DOUBLE_CLICK_WINDOW


async def verify(request: web.Request) -> web.StreamResponse:
    ctx = request[SCOPE]
    sso = request.app[SSO]
    admitted = await _admit(request, post=True)
    if isinstance(admitted, web.StreamResponse):
        return admitted
    state, session, rd = admitted.state, admitted.session, admitted.rd
    host = ctx.tenant.host
    form = await request.post()
    result = await sso.codes.verify(host, session.user_key, str(form.get("code", ""))[:64])
    metrics.VERIFICATIONS.labels(host, result.outcome).inc()
    if result.ok and result.email:
        await _record_verified(ctx, sso, state, result.email)
        return redirect(rd, 303)
    if not _needs_signup(state):
        return redirect(rd, 303)  # a second click after success
    lang = language(page_language(request))
    _ = lang.gettext
    audit: dict[str, Any] = {"request_id": ctx.request_id, "tenant": host, "user": session.user_key}
    if result.outcome == "locked":
        metrics.LOCKOUTS.labels(host).inc()
        logs.warning("verification_lockout", **audit)
        return await _answer(
            request,
            session,
            rd,
            status=429,
            error=_("Too many wrong codes. That code no longer works: please send a new one."),
        )
    if result.outcome == "superseded":
        logs.warning("verification_failed", reason="superseded", **audit)
        return await _answer(
            request,
            session,
            rd,
            status=400,
            error=_(
                "That code was replaced by a newer one. Please use the code in the latest "
                "email; this did not count as a wrong try."
            ),
        )
    if result.outcome == "wrong":
        logs.warning("verification_failed", attempts_left=result.attempts_left, **audit)
        left = result.attempts_left or 0
        message = _("That code is not right.")
        if left:
            message += " " + lang.ngettext(
                "You have %(n)s try left.", "You have %(n)s tries left.", left
            ) % {"n": left}
        return await _answer(request, session, rd, status=400, error=message)
    logs.warning("verification_failed", reason="expired_or_missing", **audit)
    return await _answer(
        request,
        session,
        rd,
        status=400,
        error=_("That code has expired. Please send a new one."),
    )


async def _record_verified(
    ctx: RequestScope, sso: SsoServices, state: SignInState, email: str
) -> None:
    session = state.session
    assert session is not None
    host = ctx.tenant.host
    now = time.time()
    if state.account is None:
        account = await sso.accounts.create(
            Account(
                user_key=session.user_key,
                tenant_host=host,
                oid=session.oid,
                tid=session.tid,
                email=email,
                given_name=session.given_name,
                family_name=session.family_name,
                name=session.name,
                created_at=now,
                verified_at=now,
            )
        )
        if account.created_at == now:
            metrics.ACCOUNTS_CREATED.labels(host).inc()
            logs.event(
                "account_created", request_id=ctx.request_id, tenant=host, user=session.user_key
            )
    else:
        await sso.accounts.update_email(host, session.user_key, email, now)
        logs.event(
            "email_reverified", request_id=ctx.request_id, tenant=host, user=session.user_key
        )
