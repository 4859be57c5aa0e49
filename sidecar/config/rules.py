"""Rules that span fields, checked on the document itself.

The models check these too, but a model's own rule runs only once every field
of it is valid, so an operator fixing one error would meet the next only at the
next run (an `sso` block on a non-pro plan stayed hidden behind a bad
`client_id` of the same tenant). Checked here on the parsed YAML, each rule is
reported together with every field error, whatever else is wrong.
"""

from __future__ import annotations

from typing import Any

SSO_NEEDS_PRO = "sso is only offered on plan pro (this tenant's plan is '{plan}')"
ADMIN_PORT_APART = "admin_listen must differ from listen: admin routes never share the public port"
REDIS_NEEDS_ADDRESS = "store redis needs exactly one of redis_url or redis_sentinel"
SMTP_CREDENTIALS = "username and password go together"
SMTP_BLOCK = "backend smtp needs an smtp block"
EMAIL_FOR_SSO = "required when a tenant has sso (verification codes are mailed)"


def checked_here(message: str) -> bool:
    """A model's message for a rule this module reports itself (said once, from here)."""
    return message in (
        ADMIN_PORT_APART,
        REDIS_NEEDS_ADDRESS,
        SMTP_CREDENTIALS,
        SMTP_BLOCK,
    ) or message.startswith(SSO_NEEDS_PRO.split("(", 1)[0])


def _block(document: Any, name: str) -> dict[str, Any]:
    value = document.get(name) if isinstance(document, dict) else None
    return value if isinstance(value, dict) else {}


def _host(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    host = value.strip().lower()
    return host[:-1] if host.endswith(".") else host


def _given(block: dict[str, Any], name: str) -> bool:
    """A field is given as itself or, for a secret, as `<name>_file` (read or not)."""
    return block.get(name) is not None or block.get(f"{name}_file") is not None


def document_problems(document: dict[str, Any]) -> list[tuple[str, str]]:
    """Every cross-field rule the document breaks, as (field path, message). Runs before
    secret files are read, so an unreadable file is not also a missing field here."""
    problems: list[tuple[str, str]] = []
    server = _block(document, "server")
    listen = server.get("listen", "0.0.0.0:8080")
    if listen == server.get("admin_listen", "0.0.0.0:9090"):
        problems.append(("server", ADMIN_PORT_APART))

    session = _block(document, "session")
    if session.get("store") == "redis":
        given = [k for k in ("redis_url", "redis_sentinel") if _given(session, k)]
        if len(given) != 1:
            problems.append(("session", REDIS_NEEDS_ADDRESS))

    email = document.get("email")
    if isinstance(email, dict):
        smtp = email.get("smtp")
        if email.get("backend", "smtp") == "smtp" and smtp is None:
            problems.append(("email", SMTP_BLOCK))
        if isinstance(smtp, dict) and _given(smtp, "username") != _given(smtp, "password"):
            problems.append(("email.smtp", SMTP_CREDENTIALS))

    tenants = document.get("tenants")
    if not isinstance(tenants, list):
        return problems
    shared = [d for d in (_host(v) for v in server.get("shared_domains") or []) if d]
    seen: dict[str, int] = {}
    any_sso = False
    for index, tenant in enumerate(tenants):
        if not isinstance(tenant, dict):
            continue
        path = f"tenants[{index}]"
        has_sso = tenant.get("sso") is not None
        any_sso = any_sso or has_sso
        plan = tenant.get("plan", "standard")
        if has_sso and plan != "pro":
            problems.append((f"{path}.plan", SSO_NEEDS_PRO.format(plan=plan)))
        host = _host(tenant.get("host"))
        if host is None:
            continue
        if host in seen:
            problems.append(
                (f"{path}.host", f"duplicate host '{host}' (also tenants[{seen[host]}])")
            )
        seen.setdefault(host, index)
        if has_sso:
            for domain in shared:
                if host == domain or host.endswith("." + domain):
                    problems.append(
                        (
                            f"{path}.sso",
                            f"SSO needs a custom domain: '{host}' is under "
                            f"the shared domain '{domain}'",
                        )
                    )
    if any_sso and document.get("email") is None:
        problems.append(("email", EMAIL_FOR_SSO))
    return problems
