"""The commands of the operator contract (`ticketlog-sso ...`).

Exit statuses (docs/reference.md, "Command line"): 0 success, 1 a failure while
running (a tenant failed check-entra, an address in use), 2 an invalid config
(or an `accounts` request that cannot be done), 64 a usage error (an unknown
option or command, a missing argument: EX_USAGE of sysexits.h).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from sidecar import logs, routes
from sidecar.access_log import ACCESS_LOG
from sidecar.commands.credential_report import credential_lines
from sidecar.commands.exit_codes import EXIT_FAILED, EXIT_INVALID, EXIT_OK, EXIT_USAGE
from sidecar.config import sources
from sidecar.config.advice import config_warnings
from sidecar.config.loading import ConfigError, parse_config
from sidecar.config.manifest import embedded_configs
from sidecar.config.model import Config
from sidecar.config.reader import ConfigReader
from sidecar.config.yaml_text import YamlProblems
from sidecar.fingerprints import fingerprint
from sidecar.version import sidecar_version

LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _config_path(args: argparse.Namespace) -> str | None:
    return args.config or os.environ.get("TICKETLOG_SSO_CONFIG")


_NO_CONFIG = "error: no config: pass -c FILE (or a directory) or set TICKETLOG_SSO_CONFIG"


def _load(args: argparse.Namespace) -> Config | None:
    """The config, or None after printing every problem (exit status 2 follows)."""
    loaded = _load_source(args)
    return None if loaded is None else loaded.config


def _load_source(
    args: argparse.Namespace,
    reader: ConfigReader | None = None,
    *,
    unread: list[str] | None = None,
) -> sources.LoadedConfig | None:
    """The config with the files it was read from, or None after printing every problem.

    ``reader``: read in its child process, so a long-running `serve` does not keep
    the memory that reading a large config took. ``unread``: secret files left unread
    are listed there (check-config --skip-secret-files; not with a reader)."""
    path = _config_path(args)
    if not path:
        print(_NO_CONFIG, file=sys.stderr)
        return None
    try:
        if reader is not None:
            return reader.load(path)
        return sources.load(path, unread=unread)
    except ConfigError as exc:
        _print_problems(path, exc.problems)
        return None


def _print_problems(label: str, problems: list[str]) -> None:
    print(f"{label}: invalid configuration", file=sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)


def _report_valid(label: str, config: Config, unread: list[str]) -> None:
    """The customer's registration URIs per SSO tenant, warnings, unread secret files."""
    count = len(config.tenants)
    print(f"{label}: valid ({count} tenant{'' if count == 1 else 's'})")
    for warning in config_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    for entry in unread:
        print(f"not checked (file not on this machine): {entry}")
    for tenant in config.tenants:
        if tenant.sso is None:
            print(f"{tenant.host}: no sso block; the desk's own login is used")
            continue
        print(f"{tenant.host}: Entra ID sign-in (tenant {tenant.sso.tenant}); register in Entra:")
        for name, uri in routes.registration_uris(tenant.host):
            print(f"  {name}: {uri}")
        if tenant.sso.client_secret:
            # Which secret is which, without showing one: the rotation metric uses these.
            prints = [fingerprint(s.get_secret_value()) for s in tenant.sso.client_secret]
            print(f"  Client secret fingerprints, newest first: {', '.join(prints)}")
        lines, warnings = credential_lines(tenant.sso, now=time.time())
        for line in lines:
            print(f"  {line}")
        for warning in warnings:
            print(f"warning: {tenant.host}: {warning}", file=sys.stderr)


def cmd_check_config(args: argparse.Namespace) -> int:
    path = _config_path(args)
    if not path:
        print(_NO_CONFIG, file=sys.stderr)
        return EXIT_INVALID
    if path != "-" and Path(path).is_dir():
        # A config directory (its files joined): each problem, and each secret file
        # --skip-secret-files left unread, names its file.
        skipped: list[str] | None = [] if args.skip_secret_files else None
        loaded = _load_source(args, unread=skipped)
        if loaded is None:
            return EXIT_INVALID
        _report_valid(path, loaded.config, skipped or [])
        return EXIT_OK
    text: str | None = None
    try:
        # `-c -`: standard input, e.g. `kubectl kustomize deploy/k8s/base | ... -c -`
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        embedded = embedded_configs(text)
    except YamlProblems as exc:
        _print_problems(path, exc.problems)
        return EXIT_INVALID
    except (OSError, UnicodeDecodeError):
        embedded = None  # the loader says what is wrong with the file
    documents = (
        [(path, None)] if embedded is None else [(f"{path} ({e.label})", e.text) for e in embedded]
    )
    if not documents:
        _print_problems(path, ["(file): a ConfigMap without a *.yaml key: no config to check"])
        return EXIT_INVALID
    status = EXIT_OK
    for label, text_of_map in documents:
        unread: list[str] | None = [] if args.skip_secret_files else None
        try:
            if text_of_map is not None:
                config = parse_config(text_of_map, unread=unread)
            elif text is not None and (unread is not None or path == "-"):
                config = parse_config(text, unread=unread)
            else:
                config = sources.load(path).config  # also says why a file is unreadable
        except ConfigError as exc:
            _print_problems(label, exc.problems)
            status = EXIT_INVALID
            continue
        _report_valid(label, config, unread or [])
    return status


def _log_level(args: argparse.Namespace) -> int:
    return LOG_LEVELS[args.log_level]


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
        from sidecar.serve import ListenError, serve_until_signalled

        loaded = _load_source(args, reader)
        if loaded is None:
            return EXIT_INVALID
        # The config lives as long as the process: no collection walks its objects
        # again (100,000s of them with many tenants) while the rest is built.
        gc.freeze()
        level = _log_level(args)
        logs.configure_logging(level)
        ACCESS_LOG.enabled = level <= logging.INFO

        async def main() -> None:
            async with open_runtime(loaded.config, config_path=path) as runtime:
                await serve_until_signalled(runtime, loaded=loaded, reader=reader)

        try:
            _run(main())
        except ListenError as exc:
            print(f"ticketlog-sso: {exc}", file=sys.stderr)
            return EXIT_FAILED
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
    from sidecar.commands import check_entra  # each command imports what it needs

    config = _load(args)
    if config is None:
        return EXIT_INVALID
    # The command explains every failure itself; the provider's own warnings would repeat
    # them on stderr.
    logging.getLogger("sidecar.oidc").setLevel(logging.ERROR)
    return asyncio.run(check_entra(config, host=args.host, out=sys.stdout))


def cmd_accounts(args: argparse.Namespace) -> int:
    from sidecar.commands import delete_account, list_accounts, show_account

    config = _load(args)
    if config is None:
        return EXIT_INVALID
    if args.action == "list":
        return asyncio.run(list_accounts(config, args.host, sys.stdout))
    if args.action == "show":
        return asyncio.run(show_account(config, args.host, args.user, sys.stdout))
    return asyncio.run(delete_account(config, args.host, args.user, sys.stdout))


DEMO_NOT_INSTALLED = (
    "ticketlog-sso demo: the demo (a development Entra emulator and a sample desk) is not "
    "part of this installation (the production image leaves it out). Run it from a clone of "
    "the repository: `make demo`, or `make demo PORT=8081` to use other ports."
)


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from sidecar.dev.demo import run_demo  # development-only code stays out of `serve`
    except ImportError:
        print(DEMO_NOT_INSTALLED, file=sys.stderr)
        return EXIT_FAILED
    from sidecar.serve import ListenError

    admin_port = args.admin_port if args.admin_port is not None else args.port + 1010
    try:
        _run(run_demo(port=args.port, admin_port=admin_port))
    except ListenError as exc:
        print(f"ticketlog-sso demo: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _run(coro: object) -> None:
    """Run on uvloop when it is installed (faster event loop), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)  # type: ignore[arg-type]
    else:
        uvloop.run(coro)  # type: ignore[arg-type]


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on exit status 64, apart from an invalid config (2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


_CONFIG_HELP = "the config file or directory (default: $TICKETLOG_SSO_CONFIG)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ticketlog-sso",
        description="Entra ID single sign-on sidecar for TicketLog desks.",
        epilog=textwrap.dedent(
            """\
            exit status: 0 success, 1 failed while running, 2 invalid config, 64 usage error.
            Each command has its own help: ticketlog-sso COMMAND --help"""
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {sidecar_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, summary: str, description: str, *examples: str
    ) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=textwrap.fill(description, 79),
            epilog=_examples(*examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    serve = command(
        "serve",
        "run the proxy",
        "Run the public listener (every tenant's traffic) and the admin listener (/healthz, "
        "/readyz, /metrics) until SIGTERM or SIGINT, then drain for at most "
        "server.shutdown_grace and exit 0. An invalid config exits 2 with the problems; an "
        "address in use exits 1.",
        "ticketlog-sso serve -c /etc/ticketlog-sso/config.yaml",
        "TICKETLOG_SSO_CONFIG=config.yaml ticketlog-sso serve --log-level warning",
    )
    serve.add_argument("-c", "--config", metavar="FILE", help=_CONFIG_HELP)
    serve.add_argument(
        "--log-level",
        choices=sorted(LOG_LEVELS, key=LOG_LEVELS.__getitem__),
        default=os.environ.get("TICKETLOG_SSO_LOG_LEVEL", "info").lower(),
        help="the least severe log lines written (default: $TICKETLOG_SSO_LOG_LEVEL, else "
        "info; the per-request access log is written at info and debug)",
    )
    serve.set_defaults(func=cmd_serve)

    check_config = command(
        "check-config",
        "validate a config file",
        "Validate a config file and every secret file it names, report every problem at once "
        "(exit 2) and warnings for what is legal but likely wrong (exit 0); print, per SSO "
        "tenant, the URIs the customer registers in Entra. FILE may also be a Kubernetes "
        "manifest: the config in each ConfigMap is checked.",
        "ticketlog-sso check-config -c config.yaml",
        "ticketlog-sso check-config -c deploy/k8s/base/config.yaml --skip-secret-files",
        "kubectl kustomize deploy/k8s/base | ticketlog-sso check-config -c - --skip-secret-files",
    )
    check_config.add_argument(
        "-c", "--config", metavar="FILE", help=_CONFIG_HELP + "; - reads standard input"
    )
    check_config.add_argument(
        "--skip-secret-files",
        action="store_true",
        help="do not fail on *_file secrets that do not exist on this machine (checking a "
        "config meant for a pod); they are listed as not checked",
    )
    check_config.set_defaults(func=cmd_check_config)

    check = command(
        "check-entra",
        "check each SSO tenant's client ID, credential and tenant live against Entra",
        "Check each SSO tenant live against Entra, as support does when a customer sends "
        "their details: the tenant resolves (discovery) and a client-credentials token "
        "request proves the client ID and its credential (secret, certificate or federated "
        "token), each refusal explained. Exit 0 all good, 1 a tenant failed, 2 invalid config.",
        "ticketlog-sso check-entra -c config.yaml",
        "ticketlog-sso check-entra -c config.yaml --host desk.contoso.com",
    )
    check.add_argument("-c", "--config", metavar="FILE", help=_CONFIG_HELP)
    check.add_argument("--host", help="check only this tenant host")
    check.set_defaults(func=cmd_check_entra)

    accounts = command(
        "accounts",
        "the first-login accounts of one tenant host",
        "List, show or delete the accounts created at users' first sign-in. Needs the shared "
        "store (session.store: redis).",
        "ticketlog-sso accounts list -c config.yaml --host desk.contoso.com",
        "ticketlog-sso accounts show -c config.yaml --host desk.contoso.com alice@contoso.com",
        "ticketlog-sso accounts delete -c config.yaml --host desk.contoso.com alice@contoso.com",
    )
    actions = accounts.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help_text, example in (
        ("list", "every account of the host, one a line", ""),
        ("show", "one account", " alice@contoso.com"),
        ("delete", "remove an account: the user goes through signup again", " alice@contoso.com"),
    ):
        sub = actions.add_parser(
            action,
            help=help_text,
            description=textwrap.fill(
                help_text[0].upper() + help_text[1:] + ". Exit 0, or 2 (unknown user, "
                "invalid config, memory store).",
                79,
            ),
            epilog=_examples(
                f"ticketlog-sso accounts {action} -c config.yaml --host desk.contoso.com{example}"
            ),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("-c", "--config", metavar="FILE", help=_CONFIG_HELP)
        sub.add_argument("--host", required=True, help="the tenant host")
        if action != "list":
            sub.add_argument(
                "user", metavar="USER", help="the user key ({oid}.{tid}) or the verified email"
            )
        sub.set_defaults(func=cmd_accounts)

    demo = command(
        "demo",
        "the whole flow locally, with no outside service",
        "Run the sidecar, a development Entra emulator, a sample desk and the console mail "
        "backend in one process; open http://desk.localhost:PORT/. Runs until Ctrl-C.",
        "ticketlog-sso demo",
        "ticketlog-sso demo --port 8081        # admin port 9091",
    )
    demo.add_argument("--port", type=int, default=8080, help="public port (default 8080)")
    demo.add_argument(
        "--admin-port", type=int, default=None, help="admin port (default: the public port + 1010)"
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
