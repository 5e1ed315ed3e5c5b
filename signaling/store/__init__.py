"""Durable storage of sites, agents and tickets, behind one small interface.

``open_store(settings)`` picks the implementation: PostgreSQL when ``DATABASE_URL`` is set,
else SQLite in the data dir. Both are the same SQL (``sql.py``) over a thin driver, and the same
tests run against both.
"""

from __future__ import annotations

from signaling.store.base import (
    AgentRecord,
    AttachmentRecord,
    AuthSessionRecord,
    DuplicateError,
    MessageRecord,
    Sender,
    SiteRecord,
    TicketRecord,
    TicketStore,
    TimelineRecord,
)
from signaling.store.files import FileStore
from signaling.store.sql import SqlTicketStore, open_store

__all__ = [
    "AgentRecord",
    "AttachmentRecord",
    "AuthSessionRecord",
    "DuplicateError",
    "FileStore",
    "MessageRecord",
    "Sender",
    "SiteRecord",
    "SqlTicketStore",
    "TicketRecord",
    "TicketStore",
    "TimelineRecord",
    "open_store",
]
