"""Canned reply variables and the signed links of sent files, as plain functions."""

from __future__ import annotations

import time

import pytest

from signaling.auth import file_links
from signaling.desk import canned


def test_unknown_variables_are_refused_and_named() -> None:
    canned.check_text("Hi {customer.name}, {agent.name} here ({ticket.id}, {site.name}).")
    canned.check_text("A brace alone { or {two words} is text, not a variable.")
    with pytest.raises(canned.CannedError, match=r"\{customer\.nmae\}, \{foo\}"):
        canned.check_text("Hi {customer.nmae} {foo} {customer.name}")


def test_rendering_fills_known_values_and_leaves_the_rest_visible() -> None:
    values = {"customer.name": "Jo", "agent.name": "Alice"}
    text = "Hi {customer.name}, {agent.name} here. Mail: {customer.email}"
    assert canned.render(text, values) == "Hi Jo, Alice here. Mail: {customer.email}"
    # Filled once: a value that looks like a variable is not rendered again.
    assert canned.render("{customer.name}", {"customer.name": "{agent.name}"}) == "{agent.name}"


def test_a_file_link_names_one_file_until_it_expires() -> None:
    link = file_links.file_link("s3cret", "tk_1", "at_1")
    path, query = link.split("?")
    assert path == "/api/files/tk_1/at_1"
    params = dict(part.split("=") for part in query.split("&"))
    exp, sig = params["exp"], params["sig"]
    assert file_links.link_valid("s3cret", "tk_1", "at_1", exp, sig)
    assert not file_links.link_valid("other", "tk_1", "at_1", exp, sig)
    assert not file_links.link_valid("s3cret", "tk_1", "at_2", exp, sig)
    assert not file_links.link_valid("s3cret", "tk_2", "at_1", exp, sig)
    assert not file_links.link_valid("s3cret", "tk_1", "at_1", str(int(exp) + 1), sig)
    assert not file_links.link_valid("s3cret", "tk_1", "at_1", "1e9", sig)
    assert not file_links.link_valid("s3cret", "tk_1", "at_1", exp, "é" * 64)
    old = file_links.file_link("s3cret", "tk_1", "at_1", now=time.time() - file_links.LINK_TTL - 5)
    old_params = dict(part.split("=") for part in old.split("?")[1].split("&"))
    assert not file_links.link_valid("s3cret", "tk_1", "at_1", old_params["exp"], old_params["sig"])
