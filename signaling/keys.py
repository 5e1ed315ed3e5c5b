"""Typed application state (aiohttp ``AppKey``): every resource the app holds."""

from __future__ import annotations

from aiohttp import web

from signaling.auth.throttle import LoginGuard
from signaling.desk import Desk
from signaling.edge.sockets import SocketApi
from signaling.hubs.calls import CallHub
from signaling.live import EventLog, LiveState
from signaling.live.nodes import Nodes
from signaling.settings import Settings
from signaling.store import FileStore, TicketStore

settings = web.AppKey("settings", Settings)
secret = web.AppKey("secret", str)
store = web.AppKey("store", TicketStore)
live = web.AppKey("live", LiveState)
event_log = web.AppKey("event_log", EventLog)
files = web.AppKey("files", FileStore)
desk = web.AppKey("desk", Desk)
calls = web.AppKey("calls", CallHub)
login_throttle = web.AppKey("login_throttle", LoginGuard)
socket_api = web.AppKey("socket_api", SocketApi)
nodes = web.AppKey("nodes", Nodes)
"""This node's record among the nodes: its state (serving, draining) and the shared state's
health, which ``/healthz`` reports."""
