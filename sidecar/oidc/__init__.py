"""Framework-free OpenID Connect relying party for Microsoft Entra ID.

Discovery and JWKS caching, the authorization request, the code exchange and
ID-token validation. No aiohttp.web here: the web layer calls these coroutines;
HTTP goes through the ``aiohttp.ClientSession`` it passes in.
"""

from .discovery import ProviderMetadata
from .errors import (
    InvalidDiscovery,
    InvalidIdToken,
    OidcError,
    ProviderRejected,
    ProviderUnavailable,
)
from .provider import AuthorizationRequest, EntraProvider, IdTokenClaims, TokenResult

__all__ = [
    "AuthorizationRequest",
    "EntraProvider",
    "IdTokenClaims",
    "InvalidDiscovery",
    "InvalidIdToken",
    "OidcError",
    "ProviderMetadata",
    "ProviderRejected",
    "ProviderUnavailable",
    "TokenResult",
]
