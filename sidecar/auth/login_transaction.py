"""The login transaction: what `/.sso/callback` must know of the sign-in a browser started.

It is never kept server-side. `/.sso/login` seals it (Fernet under the
`login_box` key derived from `session.secret_keys`) into a cookie of its own,
named after the state, so each tab's attempt has one; the callback opens it.
A cookie another release sealed (a rolling deploy, or a sign-in started just
before an upgrade) opens too: the record is versioned (sidecar/store/records.py).

Why not in the aiohttp-session session (sidecar.sign_in): that session is one per
browser, under one cookie, while a browser may have several sign-ins under way at
once (a tab each, each with its own state, nonce and PKCE verifier); one of them
finishing must not overwrite another's. And a sign-in starts before anyone is known:
keeping its transaction in the store would let anonymous clients write to it at will.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.secret_keys import SecretBox
from sidecar.store.records import RecordFormat


@dataclass(frozen=True)
class LoginTransaction:
    state: str
    nonce: str
    verifier: str
    """The PKCE code_verifier the code is redeemed with."""
    rd: str
    """Where to land after signing in; checked again by safe_redirect_target when used."""
    redirect_uri: str
    """The redirect_uri sent to /authorize: the token request must repeat it exactly."""
    host: str
    """The tenant the sign-in was started for."""
    created: float
    """When the sign-in started (epoch seconds): the oldest of a browser's are dropped."""


def _fields_typed(transaction: LoginTransaction) -> bool:
    # The callback compares the state and host and hands the rest to Entra and the
    # redirect, and a new sign-in orders the browser's others by `created`: each
    # must be of its type, or the transaction is unreadable and nothing is used.
    texts = (
        transaction.state,
        transaction.nonce,
        transaction.verifier,
        transaction.rd,
        transaction.redirect_uri,
        transaction.host,
    )
    created = transaction.created
    return (
        all(isinstance(v, str) for v in texts)
        and isinstance(created, int | float)
        and not isinstance(created, bool)
    )


#: Version 0 (no "v") is the unversioned JSON of earlier releases, with the same
#: field names: it reads without an upgrade step.
LOGIN_TRANSACTION_RECORD = RecordFormat(LoginTransaction, version=1, check=_fields_typed)


def seal_transaction(box: SecretBox, transaction: LoginTransaction) -> str:
    return box.seal(LOGIN_TRANSACTION_RECORD.encode(transaction))


def open_transaction(box: SecretBox, sealed: str, max_age: float) -> LoginTransaction | None:
    """The transaction, or None when the cookie is forged, too old or unreadable."""
    opened = box.open(sealed, max_age)
    return None if opened is None else LOGIN_TRANSACTION_RECORD.decode(opened)
