"""The store (``Store``) and its parts; see ``guardian.clients.store.store``."""

from guardian.clients.store.store import Store

__all__ = ["Store"]
