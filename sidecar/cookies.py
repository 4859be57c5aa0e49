"""The sidecar's own cookie names, and keeping them away from the desk."""

from __future__ import annotations

# Every cookie of ours starts with one of these; over https the `__Host-` form is used
# (RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain, so a sibling subdomain cannot set it).
OUR_PREFIXES = ("__Host-tlsso", "tlsso")


def cookie_name(base: str, scheme: str) -> str:
    return f"__Host-{base}" if scheme == "https" else base


def is_ours(name: str) -> bool:
    return name.strip().startswith(OUR_PREFIXES)


def without_our_cookies(header_value: str) -> str:
    """The Cookie header minus our cookies (the desk never sees our session id)."""
    kept = [
        pair.strip()
        for pair in header_value.split(";")
        if pair.strip() and not is_ours(pair.split("=", 1)[0])
    ]
    return "; ".join(kept)
