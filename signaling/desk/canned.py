"""Canned replies: a site's ready-made answers, typed as ``/shortcut`` in the console composer.

A reply's text may hold variables in braces (``{customer.name}``); only the ones in
``VARIABLES`` are allowed, and a text naming any other is refused when it is created (a typo
would otherwise reach a customer). For a ticket the console gets each reply rendered: the
variables the ticket and the agent know are filled in; one without a value (a customer who
gave no name) stays as written, visible in the composer for the agent to fix. The console only
fills its composer with it: a canned reply is never sent on its own.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

from signaling.protocol import MAX_CANNED_TEXT, CannedReply
from signaling.store import AgentRecord, CannedRecord, SiteRecord, TicketRecord, TicketStore

VARIABLES: tuple[str, ...] = (
    "customer.name",
    "customer.email",
    "agent.name",
    "ticket.id",
    "site.name",
)
"""What a reply may say in braces."""

_VARIABLE = re.compile(r"\{([^{}\s]{1,64})\}")
_SHORTCUT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class CannedError(ValueError):
    """A canned reply refused (unknown variables, no such site or reply)."""


def check_text(text: str) -> None:
    """Raise ``CannedError`` naming the unknown variables, if any."""
    unknown = sorted({name for name in _VARIABLE.findall(text) if name not in VARIABLES})
    if unknown:
        known = ", ".join("{" + v + "}" for v in VARIABLES)
        named = ", ".join("{" + v + "}" for v in unknown)
        raise CannedError(f"unknown variable {named}; a reply may use {known}")


def values_for(ticket: TicketRecord, agent: AgentRecord, site: SiteRecord | None) -> dict[str, str]:
    """The variables' values for this ticket and agent (a missing one is left out)."""
    found = {
        "customer.name": ticket.customer.get("name"),
        "customer.email": ticket.customer.get("email"),
        "agent.name": agent.name,
        "ticket.id": ticket.id,
        "site.name": site.name if site else None,
    }
    return {name: str(value) for name, value in found.items() if value}


def render(text: str, values: Mapping[str, str]) -> str:
    """The text with each known variable that has a value filled in; the rest as written."""
    return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def reply(record: CannedRecord, values: Mapping[str, str] | None = None) -> CannedReply:
    rendered = render(record.text, values) if values is not None else None
    return CannedReply(shortcut=record.shortcut, text=record.text, rendered=rendered)


async def put(store: TicketStore, site_id: str, shortcut: str, text: str, by: str) -> CannedRecord:
    """Add a site's reply (or replace the one with that shortcut), checked first."""
    if await store.site(site_id) is None:
        raise CannedError("no such site")
    if not _SHORTCUT.match(shortcut):
        raise CannedError("a shortcut is 1-32 lowercase letters, digits, '-' or '_'")
    if not text.strip() or len(text) > MAX_CANNED_TEXT:
        raise CannedError(f"a reply's text is 1-{MAX_CANNED_TEXT} characters")
    check_text(text)
    record = CannedRecord(
        site_id=site_id, shortcut=shortcut, text=text, created_by=by, created_at=time.time()
    )
    await store.put_canned(record)
    return record
