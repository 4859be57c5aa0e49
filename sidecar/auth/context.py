"""The dependencies of the SSO routes and pipeline steps, built once per runtime."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp import web

from sidecar.auth.identity import AssertionSigner
from sidecar.config.model import SignupConfig
from sidecar.keys import DerivedKeys
from sidecar.sessions.sessions import SessionManager
from sidecar.sessions.store import Store
from sidecar.signup import AccountStore, Mailer, VerificationCodes


@dataclass
class SsoServices:
    store: Store
    keys: DerivedKeys
    sessions: SessionManager
    accounts: AccountStore
    codes: VerificationCodes
    signup: SignupConfig
    mailer: Mailer
    mail_from: str
    signer: AssertionSigner
    idp_http: aiohttp.ClientSession


SSO = web.AppKey("sso", SsoServices)
