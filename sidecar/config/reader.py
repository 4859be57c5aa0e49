"""Reading the config in child processes, so that `serve` keeps only the result.

Reading 10,000 tenants allocates far more than the result keeps (the YAML
document, its copies, validation), and a process heap does not shrink back once
objects that live on are interleaved with it: `serve` would carry that for its
whole life. Reading in the serving process would also share its interpreter
lock with the event loop for as long as it takes.

So `serve` forks one helper process at start-up, before any thread or event
loop exists, with every module already imported. For each read (the first one
and every reload) the helper forks a child that reads and validates the config
and sends it back pickled; the child exits, and its memory with it. The helper
itself never reads a config, so it stays the size it was forked at. Forking only
from single-threaded processes is what keeps it safe: a fork copies just the
calling thread, and a lock held by another thread would never be released.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import multiprocessing
import os
import pickle
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sidecar.config import sources
from sidecar.config.loading import ConfigError
from sidecar.config.model import TenantConfig
from sidecar.config.sources import LoadedConfig


@dataclass(frozen=True)
class _Read:
    """What a child sends back: the config without its tenants, each tenant's digest, and
    only the tenants this process does not hold already."""

    loaded: LoadedConfig  # its config's tenants left empty
    digests: tuple[bytes, ...] | None  # None: nothing was known, every tenant is sent
    # In the one pickle of this object, so that what tenants share (default values)
    # stays shared here: a pickle a tenant would copy it into each.
    fresh: dict[int, TenantConfig]


class ConfigReader:
    """Reads the config in a forked child; create it before any thread is started."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")
        self._helper = ProcessPoolExecutor(
            max_workers=1, mp_context=context, initializer=_helper_started
        )
        # With fork, the helper process is started at the first submit: now.
        self._helper.submit(os.getpid).result()
        # The tenants of the last config read, by digest: a reload receives and
        # unpickles only the tenants that changed, so its cost in this process (which
        # serves requests meanwhile) follows the change, not the number of tenants.
        self._known: dict[bytes, TenantConfig] = {}
        self._prefetched: tuple[str, Future[bytes]] | None = None
        # Tenants received whole (nothing was known): digested at the next read, in a
        # worker thread, rather than on the way to being ready.
        self._undigested: tuple[TenantConfig, ...] = ()

    def _submit(self, path: str | Path) -> Future[bytes]:
        if self._undigested:  # the first read after start-up: digest what it returned
            tenants, self._undigested = self._undigested, ()
            self._known = {_digest(t): t for t in tenants}
        return self._helper.submit(_read_in_child, str(path), frozenset(self._known))

    def prefetch(self, path: str | Path) -> None:
        """Start reading ``path`` now; the next `load` of it takes the result. `serve`
        imports the rest of its modules meanwhile, on the other CPU."""
        self._prefetched = (str(path), self._submit(path))

    def load(self, path: str | Path) -> LoadedConfig:
        """The config at ``path``; ConfigError lists every problem. Blocks: call it from a
        worker thread once the event loop runs."""
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched[0] == str(path):
            payload = prefetched[1].result()
        else:
            payload = self._submit(path).result()
        with sources.collector_paused():  # many objects at once; none of them garbage
            outcome = pickle.loads(payload)  # noqa: S301 (our own child wrote it)
        if not isinstance(outcome, _Read):
            raise ConfigError(outcome)
        if outcome.digests is None:
            tenants = tuple(outcome.fresh[i] for i in range(len(outcome.fresh)))
            self._known, self._undigested = {}, tenants
        else:
            tenants = tuple(
                outcome.fresh[i] if i in outcome.fresh else self._known[digest]
                for i, digest in enumerate(outcome.digests)
            )
            self._known = dict(zip(outcome.digests, tenants, strict=True))
        shell = outcome.loaded
        config = shell.config.model_copy(update={"tenants": tenants})
        return LoadedConfig(config, shell.source, shell.named_files, shell.signature)

    def close(self) -> None:
        self._helper.shutdown(wait=True, cancel_futures=True)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _helper_started() -> None:
    # Ctrl-C reaches the whole process group; `serve` handles it, the helper goes with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A `serve` killed outright (SIGKILL) cannot shut the helper down: the kernel ends it.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _digest(tenant: TenantConfig) -> bytes:
    # Of every field's value, secrets included (a rotated secret is a change); never
    # shown. Of the dumped values, not of the model: the model's pickle holds the set of
    # fields given, whose order differs between equal sets built in another order.
    return hashlib.sha256(pickle.dumps(tenant.model_dump())).digest()


def _split(loaded: LoadedConfig, known: frozenset[bytes]) -> _Read:
    tenants = loaded.config.tenants
    digests: tuple[bytes, ...] | None = None
    if known:
        digests = tuple(_digest(t) for t in tenants)
        fresh = {
            i: t for i, (t, d) in enumerate(zip(tenants, digests, strict=True)) if d not in known
        }
    else:
        fresh = dict(enumerate(tenants))
    shell = LoadedConfig(
        loaded.config.model_copy(update={"tenants": ()}),
        loaded.source,
        loaded.named_files,
        loaded.signature,
    )
    return _Read(shell, digests, fresh)


def _read_in_child(path: str, known: frozenset[bytes]) -> bytes:
    """In the helper: fork a child that reads ``path``; its pickled outcome (a _Read,
    or the list of problems)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        outcome: _Read | list[str]
        try:
            outcome = _split(sources.load(path), known)
        except ConfigError as exc:
            outcome = exc.problems
        except Exception as exc:
            # The type only: an exception's text may quote a value read from the config.
            outcome = [f"(file): the config could not be read ({type(exc).__name__})"]
        with os.fdopen(write_end, "wb") as out:
            out.write(pickle.dumps(outcome))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as result:
        payload = result.read()
    os.waitpid(pid, 0)
    if not payload:
        return pickle.dumps(["(file): the config could not be read (the reading process died)"])
    return payload
