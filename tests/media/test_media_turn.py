"""TURN REST credentials (draft-uberti-behave-turn-rest-00) and ICE server settings."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from media import IceServer, ice_servers, mint_turn_credentials


def test_credentials_verify_like_coturn_does() -> None:
    username, password, expires_at = mint_turn_credentials(
        "s3cret", "agent-7", 3600, 1_700_000_000.9
    )
    assert expires_at == 1_700_003_600
    assert username == "1700003600:agent-7"
    # Independent computation, as coturn's use-auth-secret does it.
    expected = base64.b64encode(hmac.digest(b"s3cret", b"1700003600:agent-7", "sha1")).decode()
    assert password == expected
    assert len(base64.b64decode(password)) == hashlib.sha1().digest_size


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        mint_turn_credentials("", "u", 60, 0)
    with pytest.raises(ValueError):
        mint_turn_credentials("s", "a:b", 60, 0)
    with pytest.raises(ValueError):
        mint_turn_credentials("s", "u", 0, 0)
    with pytest.raises(ValueError):
        IceServer(urls=("http://example.com",))
    with pytest.raises(ValueError):
        IceServer(urls=("turn:turn.example.com",))


def test_ice_servers_from_settings() -> None:
    servers = ice_servers(
        stun_urls="stun:turn.example.com:3478",
        turn_urls="turn:turn.example.com:3478?transport=udp, turns:turn.example.com:443",
        turn_secret="s3cret",
        user="cust-1",
        now=1000,
        ttl_s=600,
    )
    assert [s.to_json()["urls"] for s in servers] == [
        ["stun:turn.example.com:3478"],
        ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:443"],
    ]
    turn = servers[1].to_json()
    assert turn["username"] == "1600:cust-1"
    assert servers[1].to_aiortc().credential == turn["credential"]
    assert ice_servers(stun_urls=None, turn_urls="", turn_secret=None, user="x", now=0) == []
    with pytest.raises(ValueError):
        ice_servers(stun_urls=None, turn_urls="turn:t", turn_secret=None, user="x", now=0)
