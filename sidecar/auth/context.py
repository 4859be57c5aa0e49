"""The dependencies of the SSO routes and pipeline steps, built once per runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from sidecar.auth.identity import AssertionSigner
from sidecar.secret_keys import DerivedKeys
from sidecar.signup import AccountStore, Mailer, VerificationCodes
from sidecar.store import Store

if TYPE_CHECKING:  # sidecar.sign_in uses this module: imported for the types only
    from sidecar.sign_in import SignInState
    from sidecar.sign_in.cache import SignInCache
    from sidecar.sign_in.storage import SessionStorage


@dataclass
class SsoServices:
    store: Store
    keys: DerivedKeys
    sessions: SessionStorage  # aiohttp-session's storage of the signed-in sessions
    accounts: AccountStore
    codes: VerificationCodes
    mailer: Mailer
    mail_from: str
    signer: AssertionSigner
    idp_http: aiohttp.ClientSession
    cache: SignInCache[SignInState]
    allow_reserved_email_domains: bool = False  # signup.allow_reserved_email_domains


SSO = web.AppKey("sso", SsoServices)
