"""The exit statuses of every `ticketlog-sso` command (docs/reference.md, "Command line").

Scripts and Kubernetes probes act on these numbers, so they never change.
"""

from __future__ import annotations

EXIT_OK = 0
"""Success."""
EXIT_FAILED = 1
"""A failure while running: a tenant failed check-entra, an address in use."""
EXIT_INVALID = 2
"""An invalid config, or an `accounts` request that cannot be done."""
EXIT_USAGE = 64
"""A usage error: an unknown option or command, a missing argument (EX_USAGE, sysexits.h)."""
