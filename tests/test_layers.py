"""The layer rules of docs/architecture.md, read from every module's imports.

The checker parses source (it never imports it), so a rule broken inside a
function body, by a relative import or by ``import aiohttp`` followed by
``aiohttp.web`` is found as surely as a top-level ``from aiohttp import web``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SIDECAR = Path(__file__).resolve().parent.parent / "sidecar"

#: The framework-free core: the OIDC relying party, first-login signup and the store.
CORE = ("sidecar.oidc", "sidecar.signup", "sidecar.store")

#: The production image leaves sidecar/dev out (.dockerignore).
DEV = "sidecar.dev"

#: The /.sso/ paths and URL builders, used from every layer.
ROUTES = "sidecar.routes"

#: The one place outside sidecar/dev allowed to reach it: the `demo` command, which
#: imports it lazily and explains itself when it is absent.
DEV_IMPORTERS_ALLOWED = frozenset({("sidecar.cli", "cmd_demo")})

#: The desk client (its connection pool and response parser), and the plain values of
#: its wire format that the tenant table and the identity headers need instead.
DESK_CLIENT = "sidecar.upstream"
DESK_WIRE = "sidecar.desk_wire"

#: Who may import the desk client: the proxy, which sends through it, and the runtime,
#: which opens and closes its pool.
DESK_CLIENT_IMPORTERS_ALLOWED = frozenset({"sidecar.proxy", "sidecar.runtime"})

#: The generic store, which knows nothing of ours but itself.
STORE = "sidecar.store"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    name: str  # what it imports, absolute ("aiohttp.web", "sidecar.metrics.IDP_FETCHES")
    line: int
    function: str | None  # the innermost enclosing function, None at module level


def module_name(path: Path, root: Path = SIDECAR) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, *, is_package: bool = False) -> list[Import]:
    """Every name a module imports, wherever the import statement stands."""
    tree = ast.parse(source)
    found: list[Import] = []
    # The package a relative import is resolved against.
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST, function: str | None) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(module, alias.name, node.lineno, function))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(Import(module, base, node.lineno, function))
            for alias in node.names:
                found.append(Import(module, f"{base}.{alias.name}", node.lineno, function))
        elif isinstance(node, ast.Attribute):
            # `import aiohttp` then `aiohttp.web.Response`: the dotted use is an import too.
            dotted = _dotted(node)
            if dotted is not None:
                found.append(Import(module, dotted, node.lineno, function))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, None)
    return found


def _dotted(node: ast.Attribute) -> str | None:
    names = [node.attr]
    value = node.value
    while isinstance(value, ast.Attribute):
        names.append(value.attr)
        value = value.value
    if not isinstance(value, ast.Name):
        return None
    names.append(value.id)
    return ".".join(reversed(names))


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _is_web_framework(name: str) -> bool:
    # aiohttp.web and the aiohttp.web_* modules it re-exports are the server side;
    # the client (aiohttp.ClientSession) is allowed.
    return _within(name, "aiohttp.web") or name.startswith("aiohttp.web_")


def violations(found: list[Import]) -> Iterator[str]:
    for imp in found:
        where = f"{imp.module} line {imp.line} imports {imp.name}"
        if any(_within(imp.module, core) for core in CORE):
            if _is_web_framework(imp.name):
                yield f"{where}: the core does not know the web framework"
            elif _within(imp.name, "sidecar.metrics"):
                yield f"{where}: the core reports through observers, not metrics"
            elif _within(imp.name, DEV):
                yield f"{where}: the core never depends on development code"
        if imp.module == ROUTES and _within(imp.name, "sidecar"):
            yield f"{where}: the route paths import nothing of ours, so every layer may use them"
        if imp.module == DESK_WIRE and _within(imp.name, "sidecar"):
            yield f"{where}: the desk's wire values import nothing of ours, so any layer may use them"
        if (
            _within(imp.name, DESK_CLIENT)
            and imp.module != DESK_CLIENT
            and imp.module not in DESK_CLIENT_IMPORTERS_ALLOWED
        ):
            yield f"{where}: only the proxy and the runtime use the desk client ({DESK_WIRE} has its types)"
        if (
            _within(imp.module, STORE)
            and _within(imp.name, "sidecar")
            and not _within(imp.name, STORE)
        ):
            yield f"{where}: the store imports nothing of ours outside {STORE}"
        if (
            _within(imp.name, DEV)
            and not _within(imp.module, DEV)
            and (imp.module, imp.function) not in DEV_IMPORTERS_ALLOWED
        ):
            yield f"{where}: sidecar/dev is not in the production image"


def all_modules() -> Iterator[tuple[Path, str]]:
    for path in sorted(SIDECAR.rglob("*.py")):
        yield path, module_name(path)


def all_imports() -> list[Import]:
    found: list[Import] = []
    for path, module in all_modules():
        source = path.read_text(encoding="utf-8")
        found += imports_of(source, module, is_package=path.name == "__init__.py")
    return found


# -- the rules hold for the code as it is ---------------------------------------


def test_every_module_is_read() -> None:
    modules = {module for _, module in all_modules()}
    # A wrong root or pattern would pass every rule vacuously.
    assert {"sidecar", "sidecar.oidc.provider", "sidecar.store", "sidecar.cli"} <= modules
    assert {"sidecar.signup.codes", "sidecar.dev.demo"} <= modules
    assert len(modules) > 80


def test_the_layer_rules_hold() -> None:
    assert list(violations(all_imports())) == []


def test_the_demo_command_is_the_only_way_into_dev() -> None:
    into_dev = {
        (imp.module, imp.function)
        for imp in all_imports()
        if _within(imp.name, DEV) and not _within(imp.module, DEV)
    }
    # If this changes, update DEV_IMPORTERS_ALLOWED and docs/architecture.md together.
    assert into_dev == DEV_IMPORTERS_ALLOWED


def test_only_the_proxy_and_the_runtime_use_the_desk_client() -> None:
    users = {
        imp.module
        for imp in all_imports()
        if _within(imp.name, DESK_CLIENT) and imp.module != DESK_CLIENT
    }
    # Both really do import it, so the rule is checked against live imports; a new user
    # is a change to DESK_CLIENT_IMPORTERS_ALLOWED and docs/architecture.md together.
    assert users == DESK_CLIENT_IMPORTERS_ALLOWED
    wire_users = {imp.module for imp in all_imports() if _within(imp.name, DESK_WIRE)}
    assert {"sidecar.tenants", "sidecar.auth.identity", DESK_CLIENT} <= wire_users


# -- the checker finds each kind of violation --------------------------------------


@pytest.mark.parametrize(
    ("module", "source", "reason"),
    [
        ("sidecar.oidc.provider", "from aiohttp import web\n", "web framework"),
        ("sidecar.oidc.provider", "import aiohttp.web\n", "web framework"),
        ("sidecar.signup.codes", "from aiohttp.web_response import Response\n", "web framework"),
        (
            "sidecar.store",
            "import aiohttp\n\ndef f():\n    return aiohttp.web.Response()\n",
            "web framework",
        ),
        ("sidecar.oidc.provider", "from sidecar.metrics import IDP_FETCHES\n", "metrics"),
        ("sidecar.signup.codes", "from sidecar import metrics\n", "metrics"),
        ("sidecar.store.memory", "from ..metrics import LOGOUTS\n", "metrics"),
        ("sidecar.oidc.jwks", "def f():\n    from sidecar.dev import entra\n", "development"),
        ("sidecar.app", "from sidecar.dev.desk import make_desk\n", "production image"),
        ("sidecar.cli", "from sidecar.dev.demo import run_demo\n", "production image"),
        ("sidecar.auth.login", "from ..dev import entra\n", "production image"),
        ("sidecar.routes", "from sidecar.request_scope import SCOPE\n", "route paths"),
        ("sidecar.tenants", "from sidecar.upstream import Origin\n", "desk client"),
        ("sidecar.auth.identity", "from ..upstream import HeadBlock\n", "desk client"),
        ("sidecar.auth.login", "from sidecar import upstream\n", "desk client"),
        ("sidecar.middleware.tenant", "def f():\n    import sidecar.upstream\n", "desk client"),
        ("sidecar.desk_wire", "from sidecar.headers import HOP_BY_HOP\n", "wire values"),
        ("sidecar.store.memory", "from sidecar.config.model import StoreConfig\n", "store"),
        ("sidecar.store.redis_store", "from .. import logs\n", "store"),
        ("sidecar.store", "def f():\n    from sidecar.sessions import Session\n", "store"),
    ],
)
def test_a_violation_is_reported(module: str, source: str, reason: str) -> None:
    found = list(violations(imports_of(source, module)))
    assert len(found) >= 1
    assert all(module in message for message in found)
    assert any(reason in message for message in found)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        # The HTTP client is how the core talks to Entra.
        ("sidecar.oidc._http", "import aiohttp\n\nx = aiohttp.ClientSession\n"),
        ("sidecar.oidc.provider", "from .events import ignore_fetch\n"),
        ("sidecar.auth.login", "from aiohttp import web\nfrom sidecar import metrics\n"),
        ("sidecar.cli", "def cmd_demo():\n    from sidecar.dev.demo import run_demo\n"),
        ("sidecar.dev.demo", "from sidecar.dev.entra import make_entra\n"),
        ("sidecar.routes", "from urllib.parse import quote\n"),
        ("sidecar.oidc.provider", "from sidecar import routes\n"),
        ("sidecar.proxy", "from sidecar.upstream import UpstreamPool\n"),
        ("sidecar.runtime", "from sidecar.upstream import UpstreamPool\n"),
        ("sidecar.upstream", "from sidecar.desk_wire import HeadBlock\n"),
        ("sidecar.tenants", "from sidecar.desk_wire import Origin\n"),
        ("sidecar.auth.identity", "from ..desk_wire import HeadBlock\n"),
        ("sidecar.desk_wire", "from yarl import URL\n"),
        ("sidecar.store.memory", "from sidecar.store import Members, Store\n"),
        ("sidecar.store.redis_store", "from .base import StoreUnavailable\n"),
    ],
)
def test_allowed_imports_pass(module: str, source: str) -> None:
    assert list(violations(imports_of(source, module))) == []


def test_relative_imports_resolve_against_the_package() -> None:
    names = {i.name for i in imports_of("from . import errors\n", "sidecar.oidc", is_package=True)}
    assert "sidecar.oidc.errors" in names
    names = {i.name for i in imports_of("from ..metrics import X\n", "sidecar.oidc.provider")}
    assert "sidecar.metrics.X" in names
