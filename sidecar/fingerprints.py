"""Short, one-way names for secrets, so metrics and `check-config` can say which one is
meant without showing it.

The fingerprint is the first 12 hex digits of the SHA-256 of the secret's value, as
`printf '%s' "$SECRET" | sha256sum | cut -c1-12` prints it: an operator rotating a
client secret computes it for the new value and compares. 48 bits of a hash of a
random secret (an Entra client secret is 40 characters) say nothing about the value.
"""

from __future__ import annotations

import hashlib

FINGERPRINT_HEX_DIGITS = 12


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:FINGERPRINT_HEX_DIGITS]
