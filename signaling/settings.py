"""Server settings: every flag of ``tandem serve`` is also a ``TANDEM_*`` environment variable."""

from __future__ import annotations

import importlib.util
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("var")
    database_url: str | None = None
    """``postgresql://...`` selects PostgreSQL; absent means SQLite in ``data_dir``."""
    redis_url: str | None = None
    """Absent means in-memory live state (a single node). Set, nodes sharing it (and one
    PostgreSQL database) run as one deployment."""
    redis_prefix: str = "tandem"
    """Prefix of every Redis key and channel of this deployment (several may share a Redis)."""
    files_dir: Path | None = None
    """Where attachments, recordings and the co-browse asset cache live, as files (a directory
    every node mounts, for several nodes); absent means ``data_dir``."""
    files_url: str | None = None
    """``s3://bucket/prefix``: those blobs in an S3-compatible bucket instead (extra ``s3``)."""
    s3_endpoint_url: str | None = None
    """The S3-compatible server (MinIO, Ceph...); absent means AWS's."""
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    """Absent: botocore's usual chain (``AWS_ACCESS_KEY_ID``..., ``~/.aws``, an instance role)."""
    s3_secret_access_key: str | None = None
    node_name: str = ""
    """This node's name among the nodes (default: the host name); a random suffix is added
    at each start, so a restarted node never mistakes an old lease for its own."""
    home_lease_ms: int = 15_000
    """Milliseconds a home node's lease of a session lives unrenewed (renewed every third of
    it): how long a dead node's calls and co-browse stay away at most."""
    secret: str = ""
    """Signs tokens. Nodes of one deployment share it; a single node keeps one in ``data_dir``."""
    agent_token_ttl: int = 15 * 60
    customer_token_ttl: int = 7 * 24 * 3600
    public_url: str | None = None
    """The URL customers' browsers reach this server at (for the embed tag shown by the CLI)."""
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    turn_ttl: int = 600
    """Seconds a minted TURN credential stays valid (the TURN REST scheme cannot revoke)."""
    media_host_addresses: tuple[str, ...] = ()
    """Addresses the server's peer connections gather candidates on; empty means all."""
    rate_per_second: float = 20.0
    """Sustained socket events per second per socket; bursts of twice that are allowed."""
    cobrowse_events_per_second: float = 500.0
    """Sustained rrweb events per second from one customer tab (bursts of 10x)."""
    cobrowse_bytes_per_second: float = 512 * 1024.0
    """Sustained co-browse bytes per second from one customer tab (bursts of 16 MiB)."""
    socket_bytes_per_second: float = 1024 * 1024.0
    """Sustained bytes per second one socket may send, checked before a frame is decoded."""
    socket_burst_bytes: float = 4 * 1024 * 1024.0
    """Bytes one socket may send at once (at least two of the largest frames)."""
    max_event_bytes: int = 1_000_000
    """Largest socket.io message accepted (engine.io closes the socket past it)."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses of reverse proxies whose ``X-Forwarded-For`` names the client."""
    login_account_burst: float = 5
    """Failed logins allowed at once for one account..."""
    login_account_interval: float = 12.0
    """...then one more every this many seconds."""
    login_address_burst: float = 20
    """Failed logins allowed at once from one client address (any accounts)..."""
    login_address_interval: float = 3.0
    """...then one more every this many seconds."""
    max_customer_sockets_per_address: int = 50
    """Customer sockets open at once from one client address (an office behind one NAT
    shares an address: raise it for a site whose customers sit behind one)."""
    max_open_tickets_per_address: int = 20
    """Open (queued or active) tickets created from one client address."""
    max_open_tickets_per_customer: int = 3
    """Open tickets of one customer id (an identified user, or one returning visitor)."""
    max_uploads_per_ticket: int = 20
    """Photos and videos a customer may upload onto one ticket."""
    max_upload_bytes_per_ticket: int = 400 * 1024 * 1024
    """Bytes of customer uploads on one ticket."""
    max_uploads_while_queued: int = 3
    """Uploads a customer may send before an agent has joined (a photo of the problem)."""
    agent_session_max_age: int = 12 * 3600
    """Seconds from login after which refreshing is refused and the agent logs in again."""
    shutdown_reconnect_ms: int = 1000
    shutdown_grace_seconds: float = 5.0
    """On SIGTERM, how long the node waits, after telling its clients to reconnect (which the
    console and the snippet do at once), for their sockets to leave before it stops."""
    routing: str = "push"
    """``push``: each waiting session is offered to one eligible agent in turn
    (docs/architecture.md, "Routing"). ``pull``: agents take sessions from the queue
    themselves, nothing is offered."""
    agent_capacity: int = 3
    """Chats one agent holds at once; no session is offered past it, and in push routing an
    accept past it is refused."""
    offer_seconds: float = 20.0
    """Seconds an offer rings before it goes to the next agent (the silent one is set Away)."""
    wrap_up_seconds: float = 30.0
    """Seconds an agent is in Wrap-up (offered nothing) after a session of theirs ends."""
    call_weight: float = 2.0
    """What a session counts against ``agent_capacity`` while the agent is in its call (a chat
    counts 1)..."""
    control_weight: float = 2.0
    """...and while the agent holds remote control of the customer's page (both at once count
    the heavier of the two)."""
    call_invite_seconds: float = 45.0
    """Seconds a call invitation (``call.invite``) rings unanswered before it expires."""
    log_level: str = "INFO"
    web_dir: Path = field(default_factory=lambda: Path(__file__).resolve().parent.parent / "web")

    def refusals(self) -> list[str]:
        """Settings given that this build does not implement: refused at start-up, never
        silently ignored."""
        refused = [*self._files_refusals()]
        if self.routing not in ("push", "pull"):
            refused.append(f"TANDEM_ROUTING must be push or pull, not {self.routing!r}")
        if self.call_invite_seconds <= 0:
            refused.append("TANDEM_CALL_INVITE_SECONDS must be above 0")
        if not math.isfinite(self.shutdown_grace_seconds) or self.shutdown_grace_seconds < 0:
            refused.append("TANDEM_SHUTDOWN_GRACE_SECONDS must be a number of seconds, at least 0")
        if self.agent_capacity < 1 or self.offer_seconds <= 0 or self.wrap_up_seconds < 0:
            refused.append(
                "TANDEM_AGENT_CAPACITY must be at least 1, TANDEM_OFFER_SECONDS above 0 and "
                "TANDEM_WRAP_UP_SECONDS at least 0"
            )
        for name, weight in (("CALL", self.call_weight), ("CONTROL", self.control_weight)):
            if not math.isfinite(weight) or weight < 1:
                refused.append(
                    f"TANDEM_{name}_WEIGHT must be a number of chats, at least 1, not {weight!r}"
                )
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            refused.append("REDIS_URL must be a redis://, rediss:// or unix:// URL")
        if self.redis_url and not self.database_url:
            refused.append(
                "REDIS_URL is set (several nodes) but DATABASE_URL is not: nodes must share one "
                "PostgreSQL database, SQLite is one node's file; set DATABASE_URL=postgresql://... "
                "or unset REDIS_URL and TANDEM_REDIS_URL to run one node"
            )
        if self.redis_url and not self.secret:
            refused.append(
                "REDIS_URL is set (several nodes) but TANDEM_SECRET is not: every node must sign "
                "tokens with the same secret; set TANDEM_SECRET (or --secret) on each node"
            )
        return refused

    def _files_refusals(self) -> list[str]:
        s3 = {
            "S3_ENDPOINT_URL": self.s3_endpoint_url,
            "S3_REGION": self.s3_region,
            "S3_ACCESS_KEY_ID": self.s3_access_key_id,
            "S3_SECRET_ACCESS_KEY": self.s3_secret_access_key,
        }
        if not self.files_url:
            return [
                f"TANDEM_{name} is set, but blobs are not in S3: set TANDEM_FILES_URL "
                "(--files-url s3://bucket/prefix) or unset it"
                for name, value in s3.items()
                if value
            ]
        refused = []
        if not self.files_url.startswith("s3://") or len(self.files_url) <= len("s3://"):
            refused.append("TANDEM_FILES_URL must be an s3://bucket/prefix URL")
        if self.files_dir is not None:
            refused.append(
                "both TANDEM_FILES_DIR and TANDEM_FILES_URL are set: blobs live in one place; "
                "unset one"
            )
        if importlib.util.find_spec("aiobotocore") is None:
            refused.append(
                "TANDEM_FILES_URL needs the S3 client, which is not installed: "
                "pip install 'tandem[s3]' (aiobotocore)"
            )
        return refused

    @property
    def redis_key_prefix(self) -> str:
        """``redis_prefix`` as the start of a key: ``tandem`` gives ``tandem:...``."""
        prefix = self.redis_prefix
        return prefix if not prefix or prefix.endswith(":") else f"{prefix}:"

    @property
    def files_root(self) -> Path:
        return self.files_dir if self.files_dir is not None else self.data_dir

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "tandem.sqlite3"

    @property
    def scratch_dir(self) -> Path:
        """Local files on their way into an S3 store."""
        return self.data_dir / "tmp"


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"TANDEM_{name}", default)


def load_secret(data_dir: Path, configured: str | None) -> str:
    """The configured secret, else one generated once and kept in the data dir."""
    if configured:
        return configured
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(value)
    return value
