"""HTML pages of the development Entra emulator (account picker, error, form_post, sign-out).

Development only. Every page is self-contained (inline CSS, no outside assets) so the demo
works offline. Every interpolated value goes through ``html.escape``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f2f2f2;font-family:"Segoe UI","Helvetica Neue",Arial,sans-serif;
color:#1b1b1b;font-size:15px}
.card{max-width:440px;margin:8vh auto 0;background:#fff;padding:44px;
box-shadow:0 2px 6px rgba(0,0,0,.2)}
.logo{display:grid;grid-template-columns:10px 10px;gap:2px;margin-bottom:16px}
.logo span{width:10px;height:10px;display:block}
.logo .r{background:#f25022}.logo .g{background:#7fba00}
.logo .b{background:#00a4ef}.logo .y{background:#ffb900}
h1{font-size:24px;font-weight:600;margin:0 0 12px}
p{margin:0 0 12px;line-height:1.4}
.muted{color:#666;font-size:13px}
.tag{display:inline-block;font-size:12px;padding:1px 6px;margin:4px 4px 0 0;
border-radius:2px;background:#fde7e9;color:#a4262c}
.tag.info{background:#e5f1fb;color:#004e8c}
form.pick button{display:block;width:100%;text-align:left;background:#fff;border:0;
border-top:1px solid #e6e6e6;padding:12px 8px;cursor:pointer;font:inherit;color:inherit}
form.pick button:hover{background:#f2f2f2}
form.pick button.hint{outline:2px solid #0067b8}
.name{font-weight:600;display:block}
.email{color:#444;font-size:13px;display:block}
.btn{display:inline-block;background:#0067b8;color:#fff;border:0;padding:6px 20px;
font:inherit;text-decoration:none;cursor:pointer}
.btn.secondary{background:#ccc;color:#1b1b1b}
pre{white-space:pre-wrap;font-size:12px;background:#f7f7f7;padding:8px;margin:12px 0 0}
.banner{font-size:12px;color:#666;text-align:center;margin-top:16px}
"""

_LOGO = (
    '<div class="logo" aria-hidden="true"><span class="r"></span><span class="g"></span>'
    '<span class="b"></span><span class="y"></span></div>'
)


def _page(title: str, body: str, *, head_extra: str = "", body_attrs: str = "") -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style>{head_extra}</head>"
        f'<body{body_attrs}><div class="card">{_LOGO}{body}</div>'
        '<p class="banner">Development Entra ID emulator: not Microsoft, no real accounts.</p>'
        "</body></html>"
    )


def _hidden_fields(params: Iterable[tuple[str, str]]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in params
    )


@dataclass(frozen=True)
class PickerEntry:
    """One account button of the picker."""

    key: str
    name: str
    email: str | None
    labels: Sequence[tuple[str, bool]]  # (text, is_warning)
    hinted: bool = False


def account_picker(
    *,
    action: str,
    tenant_label: str,
    app_label: str,
    params: Sequence[tuple[str, str]],
    entries: Sequence[PickerEntry],
) -> str:
    """The "Pick an account" page: one submit button per user, named ``user``.

    The form carries every original authorize parameter back as hidden fields, so the POST
    is a complete authorize request (entra-reference §2 parameters).
    """
    buttons = []
    for entry in entries:
        email = escape(entry.email) if entry.email else "<i>no email</i>"
        tags = "".join(
            f'<span class="tag{"" if warn else " info"}">{escape(text)}</span>'
            for text, warn in entry.labels
        )
        hint = ' class="hint"' if entry.hinted else ""
        buttons.append(
            f'<button type="submit" name="user" value="{escape(entry.key)}"{hint}>'
            f'<span class="name">{escape(entry.name)}</span>'
            f'<span class="email">{email}</span>{tags}</button>'
        )
    body = (
        "<h1>Pick an account</h1>"
        f'<p class="muted">to continue to <b>{escape(app_label)}</b> '
        f"(directory {escape(tenant_label)})</p>"
        f'<form class="pick" method="post" action="{escape(action)}">'
        f"{_hidden_fields(params)}{''.join(buttons)}"
        '<p style="margin-top:16px"><button type="submit" class="btn secondary" '
        'name="x_emulator_action" value="cancel" style="width:auto;border:0">Cancel</button></p>'
        "</form>"
    )
    return _page("Sign in to your account", body)


def error_page(*, code: int, message: str, trace_id: str, correlation_id: str, ts: str) -> str:
    """Entra's own error page: shown when the client or redirect URI cannot be trusted, so
    nothing is sent back to the relying party (entra-reference §5, "Errors that never reach
    the RP")."""
    body = (
        "<h1>Sorry, but we\u2019re having trouble signing you in.</h1>"
        f"<p><b>AADSTS{code}</b>: {escape(message)}</p>"
        f"<pre>Request Id: {escape(trace_id)}\nCorrelation Id: {escape(correlation_id)}\n"
        f"Timestamp: {escape(ts)}\nMessage: AADSTS{code}: {escape(message)}</pre>"
    )
    return _page("Sign in to your account", body)


def form_post(*, action: str, params: Sequence[tuple[str, str]]) -> str:
    """``response_mode=form_post``: an auto-submitting form (entra-reference §2)."""
    body = (
        f'<form method="post" action="{escape(action)}">{_hidden_fields(params)}'
        "<noscript><p>Script is disabled. Click Submit to continue.</p>"
        '<input type="submit" class="btn" value="Submit"></noscript></form>'
    )
    return _page("Working...", body, body_attrs=' onload="javascript:document.forms[0].submit()"')


def signed_out(*, frontchannel_urls: Sequence[str], post_logout_redirect_uri: str | None) -> str:
    """The sign-out page: one hidden iframe per front-channel logout URL (entra-reference §6),
    then a navigation to the post-logout redirect URI after about a second, so the iframes
    have time to load."""
    frames = "".join(
        f'<iframe src="{escape(url)}" style="display:none" width="0" height="0" '
        'title="front-channel logout"></iframe>'
        for url in frontchannel_urls
    )
    head = ""
    if post_logout_redirect_uri:
        target = escape(post_logout_redirect_uri)
        head = f'<meta http-equiv="refresh" content="1;url={target}">'
        tail = f'<p><a class="btn" href="{target}">Continue</a></p>'
    else:
        tail = "<p>It\u2019s a good idea to close all browser windows.</p>"
    body = f"<h1>You signed out of your account</h1>{tail}{frames}"
    return _page("Sign out", body, head_extra=head)


def error_lookup(code: str) -> str:
    """``/error?code=N``: the lookup page that every ``error_uri`` points at (§5)."""
    body = f"<h1>Error {escape(code)}</h1><p>See entra-reference §5 for what AADSTS{escape(code)}"
    body += " means for the relying party.</p>"
    return _page(f"AADSTS{code}", body)
