"""Durable storage of sites, agents and tickets, behind one small interface.

``open_store(settings)`` picks the implementation: PostgreSQL when ``DATABASE_URL`` is set,
else SQLite in the data dir. Both are the same SQL (``sql.py``) over a thin driver
(``sqlite.py``: one writing connection on the event loop, committing in groups; ``postgres.py``:
an asyncpg pool), and the same tests run against both. What live sessions read on every message
(tickets, sites, agents) is served from memory by ``CachedTicketStore`` (``cache.py``), which
``open_store`` returns.
"""

from __future__ import annotations

from signaling.store.base import (
    MAX_PAGES,
    AgentRecord,
    AttachmentRecord,
    AuthSessionRecord,
    CannedRecord,
    DuplicateError,
    MessageRecord,
    NoteRecord,
    PageRecord,
    Sender,
    SiteRecord,
    StaleEpoch,
    TicketChanged,
    TicketOpening,
    TicketRecord,
    TicketStore,
    TimelineRecord,
    UploadQuota,
)
from signaling.store.cache import CachedTicketStore
from signaling.store.files import DirectoryFileStore, FileStore, open_file_store
from signaling.store.sql import SqlTicketStore, open_store

__all__ = [
    "MAX_PAGES",
    "AgentRecord",
    "AttachmentRecord",
    "AuthSessionRecord",
    "CachedTicketStore",
    "CannedRecord",
    "DirectoryFileStore",
    "DuplicateError",
    "FileStore",
    "MessageRecord",
    "NoteRecord",
    "PageRecord",
    "Sender",
    "SiteRecord",
    "SqlTicketStore",
    "StaleEpoch",
    "TicketChanged",
    "TicketOpening",
    "TicketRecord",
    "TicketStore",
    "TimelineRecord",
    "UploadQuota",
    "open_file_store",
    "open_store",
]
