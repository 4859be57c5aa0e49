"""Operator commands of the contract that need more than a config file (``ticketlog-sso ...``).

Each command is a coroutine taking the loaded ``Config`` and an output stream and returning
the exit status; ``sidecar.cli`` parses the arguments, loads the config and runs them.
"""

from sidecar.commands.accounts_command import delete_account, list_accounts, show_account
from sidecar.commands.check_entra import check_entra

__all__ = ["check_entra", "delete_account", "list_accounts", "show_account"]
