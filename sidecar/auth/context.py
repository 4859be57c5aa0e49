"""The dependencies of the SSO routes and pipeline steps, built once per runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from sidecar.auth.cache import SignInCache
from sidecar.auth.identity import AssertionSigner
from sidecar.secret_keys import DerivedKeys
from sidecar.sessions.sessions import SessionManager
from sidecar.signup import AccountStore, Mailer, VerificationCodes
from sidecar.store import Store


@dataclass
class SsoServices:
    store: Store
    keys: DerivedKeys
    sessions: SessionManager
    accounts: AccountStore
    codes: VerificationCodes
    mailer: Mailer
    mail_from: str
    signer: AssertionSigner
    idp_http: aiohttp.ClientSession
    cache: SignInCache[Any]  # of sidecar.auth.resolve.SignInState
    allow_reserved_email_domains: bool = False  # signup.allow_reserved_email_domains


SSO = web.AppKey("sso", SsoServices)
