"""Small pure pieces: user-agent parsing, tokens, identity signatures, rate buckets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling import auth
from signaling.cli import main
from signaling.desk.useragent import parse_user_agent
from signaling.edge.ratelimit import TokenBucket
from signaling.protocol.times import iso
from signaling.settings import Settings

UAS = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        ("Chrome", "131", "Windows", "10/11", "desktop"),
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
        ("Edge", "131", "Windows", "10/11", "desktop"),
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        ("Safari", "18", "macOS", "14.6", "desktop"),
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.6778.81 Mobile Safari/537.36",
        ("Chrome", "131", "Android", "14", "mobile"),
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/26.0 Chrome/122.0.0.0 Safari/537.36",
        ("Samsung Internet", "26", "Android", "13", "tablet"),
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Mobile/15E148 Safari/604.1",
        ("Safari", "17", "iPadOS", "17.5", "tablet"),
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        ("Firefox", "133", "Linux", "", "desktop"),
    ),
    ("Googlebot/2.1 (+http://www.google.com/bot.html)", ("Unknown", "", "Unknown", "", "bot")),
    ("", ("Unknown", "", "Unknown", "", "unknown")),
]


@pytest.mark.parametrize(("ua", "expected"), UAS)
def test_user_agents(ua: str, expected: tuple[str, ...]) -> None:
    d = parse_user_agent(ua)
    assert (d.browser, d.browser_version, d.os, d.os_version, d.type) == expected


def test_tokens_round_trip_and_refuse_tampering() -> None:
    token, _ = auth.issue_agent_token("s3cret", "ag_1", "supervisor", 60)
    assert auth.read_agent_token("s3cret", token).role == "supervisor"
    head, body, sig = token.split(".")
    tampered_body = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    for bad, reason in [
        (f"{head}.{tampered_body}.{sig}", "bad_signature"),
        (f"v2.{body}.{sig}", "malformed"),
        ("v1.x", "malformed"),
        (f"{head}.{body}.", "bad_signature"),
    ]:
        with pytest.raises(auth.TokenError) as info:
            auth.read_agent_token("s3cret", bad)
        assert info.value.reason == reason
    customer = auth.issue_customer_token("s3cret", "site", "c", "tk", 60)
    with pytest.raises(auth.TokenError, match="wrong_kind"):
        auth.read_agent_token("s3cret", customer)
    expired = auth.issue_customer_token("s3cret", "site", "c", "tk", -1)
    with pytest.raises(auth.TokenError, match="expired"):
        auth.read_customer_token("s3cret", expired)
    assert auth.read_customer_token("s3cret", expired, allow_expired=True).ticket_id == "tk"


def test_passwords_and_identity() -> None:
    stored = auth.hash_password("hunter2 hunter2")
    assert stored.startswith("scrypt$") and "hunter2" not in stored
    assert auth.verify_password("hunter2 hunter2", stored)
    assert not auth.verify_password("hunter3 hunter3", stored)
    assert not auth.verify_password("x", "garbage")
    sig = auth.identity_signature("sk_site", "user-1")
    assert auth.identity_verified("sk_site", "user-1", sig)
    assert auth.identity_verified("sk_site", "user-1", sig.upper())
    assert not auth.identity_verified("sk_site", "user-2", sig)
    assert not auth.identity_verified("sk_site", "user-1", None)
    assert len(auth.new_id("tk")) >= 3 + 22  # 128 random bits


def test_token_bucket() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=4, clock=lambda: now[0])
    assert [bucket.take() for _ in range(5)] == [True] * 4 + [False]
    now[0] = 1.0
    assert [bucket.take() for _ in range(3)] == [True, True, False]


def test_several_nodes_need_postgresql_and_a_shared_secret() -> None:
    alone = Settings(redis_url="redis://127.0.0.1:6379/0").refusals()
    assert any("PostgreSQL" in refusal for refusal in alone)
    assert any("TANDEM_SECRET" in refusal for refusal in alone)
    assert Settings(redis_url="http://redis", database_url="postgresql://x", secret="s").refusals()
    assert (
        Settings(
            redis_url="redis://127.0.0.1:6379/0", database_url="postgresql://x/db", secret="s"
        ).refusals()
        == []
    )
    assert Settings().refusals() == []


def test_serve_refuses_redis_with_sqlite(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "serve",
                "--redis-url",
                "redis://127.0.0.1:6379/0",
                "--secret",
                "s",
                "--database-url",
                "",
            ]
        )
        == 2
    )
    assert "PostgreSQL" in capsys.readouterr().err


def test_texts_of_white_space_alone_are_refused_by_every_model_that_takes_one() -> None:
    import pydantic

    from signaling.protocol import CannedReplyCreate, ChatSend, NoteAdd, NoteCreate

    cases: list[tuple[type[pydantic.BaseModel], dict[str, str]]] = [
        (ChatSend, {"clientMsgId": "c1"}),
        (NoteAdd, {"ticketId": "tk_1"}),
        (NoteCreate, {}),
        (CannedReplyCreate, {"shortcut": "thanks"}),
    ]
    for model, fields in cases:
        with pytest.raises(pydantic.ValidationError, match="text is blank"):
            model.model_validate({**fields, "text": " \n\t"})
        assert model.model_validate({**fields, "text": " hi "}).text == " hi "  # type: ignore[attr-defined]


@settings(max_examples=3000, deadline=None)
@given(
    st.floats(min_value=0, max_value=253_402_300_799.0)
    | st.integers(min_value=0, max_value=4_000_000_000).map(lambda s: s + 0.9995)
    | st.integers(min_value=0, max_value=4_000_000_000).map(lambda s: s + 0.9999995)
)
def test_wire_times_are_what_datetime_writes(ts: float) -> None:
    """``iso`` caches the second's text and rounds the fraction itself: the same text as
    ``datetime``'s, to the character, at every second boundary and rounding edge."""
    want = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    assert iso(ts) == want.replace("+00:00", "Z")
