"""The configuration file of the operator contract, as typed, frozen models.

Validation here is pure: no network, no file access (secret files are read by
the loader before validation). Every model forbids unknown keys, so a typo in
the YAML is reported instead of silently ignored.
"""

from __future__ import annotations

import ipaddress
import re
import time
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sidecar.oidc.credentials import CertificateError, ClientCertificate, load_certificate
from sidecar.oidc.discovery import normalize_authority, validate_tenant
from sidecar.pages.colour import AA_NORMAL_TEXT, WHITE, contrast_ratio, parse_hex_colour

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
MIN_SECRET_KEY_BYTES = 32


def _duration(value: object) -> float:
    """Durations are written `25s`, `10m`, `12h`, `1d` (contract: Configuration file)."""
    if isinstance(value, bool):
        raise PydanticCustomError("duration", "not a duration (use s, m, h or d, e.g. 25s)")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise PydanticCustomError(
            "duration", "not a duration: {value} (use s, m, h or d, e.g. 25s)", {"value": value}
        )
    if seconds <= 0:
        raise PydanticCustomError("duration", "must be longer than zero")
    return seconds


Duration = Annotated[float, BeforeValidator(_duration)]


def _listen_address(value: object) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("listen", "must be HOST:PORT, e.g. 0.0.0.0:8080")
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise PydanticCustomError(
            "listen", "must be HOST:PORT, e.g. 0.0.0.0:8080, got '{v}'", {"v": value}
        )
    return value


ListenAddress = Annotated[str, BeforeValidator(_listen_address)]


def normalize_host(value: str) -> str:
    """Case-folded, one trailing dot removed: the form tenants are matched in."""
    host = value.strip().lower()
    return host[:-1] if host.endswith(".") else host


def _host_name(value: object) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("host", "must be a host name")
    host = normalize_host(value)
    if not _HOSTNAME.match(host):
        raise PydanticCustomError(
            "host", "not a host name (no scheme, port or path): {v}", {"v": value}
        )
    return host


HostName = Annotated[str, BeforeValidator(_host_name)]


def _secret_list(value: object) -> object:
    """A secret given once or as a list (rotation, newest first)."""
    return [value] if isinstance(value, str | SecretStr) else value


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ServerConfig(_Model):
    listen: ListenAddress = "0.0.0.0:8080"
    admin_listen: ListenAddress = "0.0.0.0:9090"
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    shared_domains: tuple[HostName, ...] = ()
    shutdown_grace: Duration = 25.0
    upstream_connect_timeout: Duration = 5.0
    upstream_read_timeout: Duration = 300.0

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if not isinstance(value, list | tuple):
            return value
        out: list[object] = []
        for item in value:
            try:
                out.append(ipaddress.ip_network(str(item), strict=False))
            except ValueError:
                raise PydanticCustomError(
                    "network", "not an IP address or CIDR network: {v}", {"v": item}
                ) from None
        return out

    @model_validator(mode="after")
    def _separate_ports(self) -> ServerConfig:
        if self.listen == self.admin_listen:
            raise PydanticCustomError(
                "listen",
                "admin_listen must differ from listen: admin routes never share the public port",
            )
        return self


class RedisSentinelConfig(_Model):
    hosts: tuple[str, ...] = Field(min_length=1)
    service: str
    password: SecretStr | None = None

    @field_validator("hosts")
    @classmethod
    def _host_ports(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for entry in hosts:
            _, sep, port = entry.rpartition(":")
            if not sep or not port.isdigit():
                raise PydanticCustomError(
                    "sentinel", "sentinel host must be HOST:PORT, got '{v}'", {"v": entry}
                )
        return hosts


class SessionConfig(_Model):
    store: Literal["memory", "redis"] = "memory"
    redis_url: SecretStr | None = None
    redis_sentinel: RedisSentinelConfig | None = None
    secret_keys: tuple[SecretStr, ...] = Field(min_length=1)
    lifetime: Duration = 12 * 3600.0
    idle_timeout: Duration = 3600.0
    # How long a replica may answer from its in-process cache of validated sign-ins:
    # the bound on how late a logout on another replica takes effect here.
    cache_ttl: Duration = 5.0

    @field_validator("secret_keys", mode="before")
    @classmethod
    def _listify(cls, value: object) -> object:
        return _secret_list(value)

    @field_validator("secret_keys")
    @classmethod
    def _long_enough(cls, keys: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for index, key in enumerate(keys):
            if len(key.get_secret_value().encode()) < MIN_SECRET_KEY_BYTES:
                raise PydanticCustomError(
                    "secret_key",
                    "key {index} is shorter than 32 bytes (make one: openssl rand -base64 32)",
                    {"index": index},
                )
        return keys

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None and urlsplit(url.get_secret_value()).scheme not in ("redis", "rediss"):
            raise PydanticCustomError("redis_url", "must start with redis:// or rediss://")
        return url

    @model_validator(mode="after")
    def _store_settings(self) -> SessionConfig:
        if self.store == "redis" and (self.redis_url is None) == (self.redis_sentinel is None):
            raise PydanticCustomError(
                "store", "store redis needs exactly one of redis_url or redis_sentinel"
            )
        if self.idle_timeout > self.lifetime:
            raise PydanticCustomError("store", "idle_timeout must not be longer than lifetime")
        return self


class SignupConfig(_Model):
    code_ttl: Duration = 600.0
    max_attempts: int = Field(default=5, ge=1, le=20)
    resend_cooldown: Duration = 60.0
    max_sends_per_hour: int = Field(default=5, ge=1)
    max_sends_per_hour_per_ip: int = Field(default=50, ge=1)
    # Typed addresses in special-use domains (`.test`, `example.com`, RFC 2606 / RFC 6761)
    # are refused, since no mail reaches them; a demo or test setup accepts them.
    allow_reserved_email_domains: bool = False


class SmtpConfig(_Model):
    host: str
    port: int = Field(default=587, gt=0, lt=65536)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_address: str = Field(alias="from")
    timeout: Duration = 10.0

    @model_validator(mode="after")
    def _credentials_together(self) -> SmtpConfig:
        if (self.username is None) != (self.password is None):
            raise PydanticCustomError("smtp", "username and password go together")
        return self


class EmailConfig(_Model):
    backend: Literal["smtp", "console"] = "smtp"
    smtp: SmtpConfig | None = None

    @model_validator(mode="after")
    def _smtp_settings(self) -> EmailConfig:
        if self.backend == "smtp" and self.smtp is None:
            raise PydanticCustomError("email", "backend smtp needs an smtp block")
        return self


def _http_url(value: object) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("url", "must be an http(s) URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError(
            "url", "must be an http:// or https:// URL, got '{v}'", {"v": value}
        )
    return value.rstrip("/")


HttpUrl = Annotated[str, BeforeValidator(_http_url)]


def _path_prefixes(value: object) -> object:
    if isinstance(value, list | tuple):
        for item in value:
            if not isinstance(item, str) or not item.startswith("/"):
                raise PydanticCustomError(
                    "path", "every path must start with '/', got '{v}'", {"v": item}
                )
    return value


PathPrefixes = Annotated[tuple[str, ...], BeforeValidator(_path_prefixes)]


class ClientCertificateConfig(_Model):
    """A certificate uploaded to the app (Certificates & secrets → Certificates) and its
    key, given as ``certificate_file`` and ``private_key_file`` (PEM; read by the loader)."""

    certificate: str
    private_key: SecretStr

    @model_validator(mode="before")
    @classmethod
    def _both_files(cls, value: object) -> object:
        if isinstance(value, dict):
            missing = [
                name
                for name in ("certificate", "private_key")
                if name not in value and f"{name}_file" not in value
            ]
            if missing:
                raise PydanticCustomError(
                    "certificate",
                    "needs certificate_file and private_key_file (PEM); missing {names}",
                    {"names": " and ".join(f"{m}_file" for m in missing)},
                )
        return value

    @model_validator(mode="after")
    def _usable(self) -> ClientCertificateConfig:
        # The contract: a key that does not match its certificate, or an expired
        # certificate, is a validation error (Entra would refuse every assertion).
        self.load()
        return self

    def load(self, now: float | None = None) -> ClientCertificate:
        try:
            return load_certificate(
                self.certificate,
                self.private_key.get_secret_value(),
                now=time.time() if now is None else now,
            )
        except CertificateError as exc:
            raise PydanticCustomError("certificate", "{reason}", {"reason": str(exc)}) from None


def _certificate_list(value: object) -> object:
    """One certificate entry or a list of them (rotation, newest first)."""
    return [value] if isinstance(value, dict) else value


class SsoConfig(_Model):
    provider: Literal["entra"] = "entra"
    tenant: str
    client_id: str
    # Exactly one of the three credential kinds (contract: Client credentials).
    client_secret: tuple[SecretStr, ...] = ()
    client_certificate: Annotated[
        tuple[ClientCertificateConfig, ...], BeforeValidator(_certificate_list)
    ] = ()
    # "" means $AZURE_FEDERATED_TOKEN_FILE (resolved by the loader); read at each use.
    federated_token_file: str | None = None
    authority: HttpUrl = "https://login.microsoftonline.com"
    # App role values of which a user needs one; empty: no role needed.
    allowed_roles: tuple[str, ...] = ()

    @field_validator("client_id")
    @classmethod
    def _guid(cls, value: str) -> str:
        if not GUID.match(value):
            raise PydanticCustomError("guid", "not a GUID (the Application (client) ID from Entra)")
        return value.lower()

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str) -> str:
        candidate = value.strip().lower()
        try:
            # The same rule the sign-in code applies, so check-config and serve agree.
            validate_tenant(candidate)
        except ValueError:
            raise PydanticCustomError(
                "tenant",
                "must be the tenant's primary domain, *.onmicrosoft.com domain, or tenant ID",
            ) from None
        return candidate

    @field_validator("authority")
    @classmethod
    def _authority(cls, value: str) -> str:
        try:
            return normalize_authority(value)
        except ValueError as exc:
            raise PydanticCustomError("authority", "{reason}", {"reason": str(exc)}) from None

    @field_validator("client_secret", mode="before")
    @classmethod
    def _listify(cls, value: object) -> object:
        return _secret_list(value)

    @field_validator("client_secret")
    @classmethod
    def _not_empty(cls, secrets: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if any(not s.get_secret_value().strip() for s in secrets):
            raise PydanticCustomError("secret", "must not be empty")
        return secrets

    @field_validator("federated_token_file")
    @classmethod
    def _token_path(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise PydanticCustomError("path", "must be the path of the projected token file")
        return value

    @field_validator("allowed_roles", mode="before")
    @classmethod
    def _roles(cls, value: object) -> object:
        value = [value] if isinstance(value, str) else value
        if isinstance(value, list | tuple):
            for role in value:
                # Learn "Add app roles": a role's Value cannot contain spaces; one that
                # does could never match a token, so it is refused here.
                if (
                    not isinstance(role, str)
                    or not role
                    or not role.isprintable()
                    or any(c.isspace() for c in role)
                ):
                    raise PydanticCustomError(
                        "role",
                        "every role must be an app role Value (no spaces), got '{v}'",
                        {"v": role},
                    )
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> SsoConfig:
        given = [
            name
            for name, present in (
                ("client_secret", bool(self.client_secret)),
                ("client_certificate", bool(self.client_certificate)),
                ("federated_token_file", self.federated_token_file is not None),
            )
            if present
        ]
        if len(given) != 1:
            raise PydanticCustomError(
                "credential",
                "needs exactly one of client_secret, client_certificate or "
                "federated_token_file{found}",
                {"found": f" (found {' and '.join(given)})" if given else ""},
            )
        return self

    @property
    def certificates(self) -> tuple[ClientCertificate, ...]:
        """The client certificates, parsed (newest first)."""
        return tuple(entry.load() for entry in self.client_certificate)


def _upstream_origin(value: object) -> object:
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.username or parts.password or parts.query or parts.fragment:
            raise PydanticCustomError(
                "url", "must be scheme://host[:port] of the desk, without credentials or query"
            )
        if parts.path not in ("", "/"):
            raise PydanticCustomError(
                "url", "must not have a path: requests keep their own path on the desk"
            )
    return value


def _accent_colour(value: object) -> str:
    """A tenant's accent colour: #rrggbb with WCAG AA contrast (4.5:1) against white,
    since it carries white button text and links on white (WCAG 2.2 §1.4.3)."""
    if not isinstance(value, str):
        raise PydanticCustomError("colour", 'must be a colour written #rrggbb, e.g. "#0f6cbd"')
    try:
        colour = parse_hex_colour(value.strip())
    except ValueError:
        raise PydanticCustomError(
            "colour", 'must be a colour written #rrggbb, e.g. "#0f6cbd", got {v!r}', {"v": value}
        ) from None
    ratio = contrast_ratio(colour, WHITE)
    if ratio < AA_NORMAL_TEXT:
        raise PydanticCustomError(
            "colour",
            "{v} has a contrast of {r}:1 against white; WCAG AA needs at least 4.5:1 "
            "(choose a darker shade)",
            {"v": colour, "r": f"{ratio:.2f}"},
        )
    return colour


def _logo_path(value: object) -> object:
    if isinstance(value, str) and not value.lower().endswith((".png", ".svg")):
        raise PydanticCustomError("logo", "must be a .png or .svg file, got {v!r}", {"v": value})
    return value


class BrandingConfig(_Model):
    """A tenant's look on the sidecar's pages (the file is read by the loader's checks)."""

    logo_file: Annotated[str, BeforeValidator(_logo_path)] | None = None
    accent_color: Annotated[str, BeforeValidator(_accent_colour)] | None = None
    support_contact: str | None = Field(default=None, min_length=1, max_length=200)


class TenantConfig(_Model):
    host: HostName
    # Absent: forward-auth only: a gateway proxies to the desk and asks /.sso/auth.
    upstream: Annotated[HttpUrl, AfterValidator(_upstream_origin)] | None = None
    plan: str = "standard"
    name: str | None = None  # the desk's display name in pages and mail; defaults to the host
    public_paths: PathPrefixes = ()
    logout_paths: PathPrefixes = ()
    allowed_email_domains: tuple[HostName, ...] = ()
    sso: SsoConfig | None = None
    branding: BrandingConfig | None = None
    # Cache-Control: no-store on signed-in HTML the desk sends without a cache header of
    # its own, so Back after sign-out on a shared computer cannot show the last user's page.
    signed_in_no_store: bool = True

    @model_validator(mode="after")
    def _sso_needs_pro(self) -> TenantConfig:
        if self.sso is not None and self.plan != "pro":
            raise PydanticCustomError(
                "plan",
                "sso is only offered on plan pro (this tenant's plan is '{p}')",
                {"p": self.plan},
            )
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.host


class Config(_Model):
    server: ServerConfig = ServerConfig()
    session: SessionConfig
    signup: SignupConfig = SignupConfig()
    email: EmailConfig | None = None
    tenants: tuple[TenantConfig, ...] = Field(min_length=1)

    @property
    def sso_tenants(self) -> tuple[TenantConfig, ...]:
        return tuple(t for t in self.tenants if t.sso is not None)


def cross_field_problems(config: Config) -> list[tuple[str, str]]:
    """Rules that span sections; each problem as (field path, message)."""
    problems: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for index, tenant in enumerate(config.tenants):
        path = f"tenants[{index}]"
        if tenant.host in seen:
            problems.append(
                (
                    f"{path}.host",
                    f"duplicate host {tenant.host!r} (also tenants[{seen[tenant.host]}])",
                )
            )
        seen.setdefault(tenant.host, index)
        if tenant.sso is not None:
            for domain in config.server.shared_domains:
                if tenant.host == domain or tenant.host.endswith("." + domain):
                    problems.append(
                        (
                            f"{path}.sso",
                            f"SSO needs a custom domain: {tenant.host!r} is under "
                            f"the shared domain {domain!r}",
                        )
                    )
    if config.sso_tenants and config.email is None:
        problems.append(("email", "required when a tenant has sso (verification codes are mailed)"))
    return problems
