"""The generic key-value store under sessions, accounts, verification codes and
login state: the interface (base), an in-process implementation for one replica
(memory) and the Redis one shared by replicas (redis_store)."""

from sidecar.store.base import Members, Store, StoreUnavailable

__all__ = ["Members", "Store", "StoreUnavailable"]
