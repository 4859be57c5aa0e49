"""First-login signup: email verification codes, accounts, the verification mail.

Framework-free: the web handlers live elsewhere and call these.
"""

from sidecar.signup.accounts import Account, AccountNotFound, AccountStore, AmbiguousAccount
from sidecar.signup.codes import (
    CodePolicy,
    IssuedCode,
    SendRefused,
    VerificationCodes,
    VerifyResult,
    normalize_code_input,
)
from sidecar.signup.email_rules import InvalidEmail, domain_allowed, normalize_typed_email
from sidecar.signup.mail import (
    ConsoleMailer,
    Mailer,
    MailError,
    SmtpMailer,
    build_verification_message,
)

__all__ = [
    "Account",
    "AccountNotFound",
    "AccountStore",
    "AmbiguousAccount",
    "CodePolicy",
    "ConsoleMailer",
    "InvalidEmail",
    "IssuedCode",
    "MailError",
    "Mailer",
    "SendRefused",
    "SmtpMailer",
    "VerificationCodes",
    "VerifyResult",
    "build_verification_message",
    "domain_allowed",
    "normalize_code_input",
    "normalize_typed_email",
]
