"""The commands of the operator contract (`ticketlog-sso ...`)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from collections.abc import Sequence

from sidecar import logs
from sidecar.config import sources
from sidecar.config.loading import ConfigError
from sidecar.config.model import Config
from sidecar.config.reader import ConfigReader
from sidecar.fingerprints import fingerprint

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


def _config_path(args: argparse.Namespace) -> str | None:
    return args.config or os.environ.get("TICKETLOG_SSO_CONFIG")


def _load(args: argparse.Namespace) -> Config | None:
    """The config, or None after printing every problem (exit status 2 follows)."""
    loaded = _load_source(args)
    return None if loaded is None else loaded.config


def _load_source(
    args: argparse.Namespace, reader: ConfigReader | None = None
) -> sources.LoadedConfig | None:
    """The config with the files it was read from, or None after printing every problem.

    ``reader``: read in its child process, so a long-running `serve` does not keep
    the memory that reading a large config took."""
    path = _config_path(args)
    if not path:
        print(
            "error: no config: pass -c FILE (or a directory) or set TICKETLOG_SSO_CONFIG",
            file=sys.stderr,
        )
        return None
    try:
        return reader.load(path) if reader is not None else sources.load(path)
    except ConfigError as exc:
        print(f"{path}: invalid configuration", file=sys.stderr)
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def registration_uris(host: str) -> list[tuple[str, str]]:
    """What the customer registers in Entra for one SSO tenant host (contract)."""
    return [
        ("Redirect URI (Web)", f"https://{host}/.sso/callback"),
        ("Front-channel logout URL", f"https://{host}/.sso/frontchannel-logout"),
        ("Post-logout redirect URI", f"https://{host}/.sso/signed-out"),
        ("Homepage URL (My Apps)", f"https://{host}/"),
    ]


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EXIT_INVALID
    print(f"{_config_path(args)}: valid ({len(config.tenants)} tenants)")
    for tenant in config.tenants:
        if tenant.sso is None:
            print(f"{tenant.host}: no sso block; the desk's own login is used")
            continue
        print(f"{tenant.host}: Entra ID sign-in (tenant {tenant.sso.tenant}); register in Entra:")
        for label, uri in registration_uris(tenant.host):
            print(f"  {label}: {uri}")
        # Which secret is which, without showing one: the rotation metric uses these.
        prints = [fingerprint(s.get_secret_value()) for s in tenant.sso.client_secret]
        print(f"  Client secret fingerprints, newest first: {', '.join(prints)}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    # Before any thread exists: the reader forks its helper process now.
    path = _config_path(args)
    reader = _config_reader() if path else None
    try:
        if reader is not None and path:
            reader.prefetch(path)
        # Imported here, while a child reads the config: serving's own modules (the
        # web app, the stores, mail) load on this CPU as the config loads on the other.
        from sidecar.runtime import open_runtime
        from sidecar.serve import serve_until_signalled

        loaded = _load_source(args, reader)
        if loaded is None:
            return EXIT_INVALID
        # The config lives as long as the process: no collection walks its objects
        # again (100,000s of them with many tenants) while the rest is built.
        gc.freeze()
        logs.configure_logging()

        async def main() -> None:
            async with open_runtime(loaded.config, config_path=_config_path(args)) as runtime:
                await serve_until_signalled(runtime, loaded=loaded, reader=reader)

        _run(main())
        return EXIT_OK
    finally:
        if reader is not None:
            reader.close()


def _config_reader() -> ConfigReader | None:
    """The child-process reader, or None where processes cannot be forked (then the
    config is read in this process, as check-config does)."""
    try:
        return ConfigReader()
    except (OSError, ValueError, NotImplementedError) as exc:
        print(f"note: reading the config in this process ({type(exc).__name__})", file=sys.stderr)
        return None


def cmd_check_entra(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EXIT_INVALID
    # The command explains every failure itself; the provider's own warnings would repeat
    # them on stderr.
    logging.getLogger("sidecar.oidc").setLevel(logging.ERROR)
    from sidecar.commands import check_entra  # each command imports what it needs

    return asyncio.run(check_entra(config, host=args.host, out=sys.stdout))


def cmd_accounts(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EXIT_INVALID
    from sidecar.commands import delete_account, list_accounts, show_account

    if args.action == "list":
        return asyncio.run(list_accounts(config, args.host, sys.stdout))
    if args.action == "show":
        return asyncio.run(show_account(config, args.host, args.user, sys.stdout))
    return asyncio.run(delete_account(config, args.host, args.user, sys.stdout))


def cmd_demo(args: argparse.Namespace) -> int:
    from sidecar.dev.demo import run_demo  # development-only code stays out of `serve`

    _run(run_demo(port=args.port, admin_port=args.admin_port))
    return EXIT_OK


def _run(coro: object) -> None:
    """Run on uvloop when it is installed (faster event loop), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)  # type: ignore[arg-type]
    else:
        uvloop.run(coro)  # type: ignore[arg-type]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticketlog-sso", description="Entra ID single sign-on sidecar for TicketLog desks."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "-c", "--config", help="config file or directory (default: $TICKETLOG_SSO_CONFIG)"
        )
        return sub

    with_config("serve", "run the proxy").set_defaults(func=cmd_serve)
    with_config("check-config", "validate a config file").set_defaults(func=cmd_check_config)
    check = with_config(
        "check-entra", "check each SSO tenant's client ID, secret and tenant live against Entra"
    )
    check.add_argument("--host", help="check only this tenant host")
    check.set_defaults(func=cmd_check_entra)

    accounts = commands.add_parser("accounts", help="the first-login accounts of one tenant host")
    actions = accounts.add_subparsers(dest="action", required=True)
    for action, help_text in (
        ("list", "every account of the host, one a line"),
        ("show", "one account"),
        ("delete", "remove an account: the user goes through signup again"),
    ):
        sub = actions.add_parser(action, help=help_text)
        sub.add_argument(
            "-c", "--config", help="config file or directory (default: $TICKETLOG_SSO_CONFIG)"
        )
        sub.add_argument("--host", required=True, help="the tenant host")
        if action != "list":
            sub.add_argument(
                "user", metavar="USER", help="the user key ({oid}.{tid}) or the verified email"
            )
        sub.set_defaults(func=cmd_accounts)

    demo = commands.add_parser("demo", help="the whole flow locally, with no outside service")
    demo.add_argument("--port", type=int, default=8080, help="public port (default 8080)")
    demo.add_argument("--admin-port", type=int, default=9090, help="admin port (default 9090)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
