"""``/api/openapi.json``: the REST API described from the same pydantic models it serves."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from signaling.protocol import REST_MODELS, AgentProfile


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(name)}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): {"description": "error", **_json("ApiError")} for code in codes}


@cache
def openapi_document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [*REST_MODELS, AgentProfile]
    mode: JsonSchemaMode = "serialization"
    _, schema = models_json_schema(
        [(m, mode) for m in models], ref_template="#/components/schemas/{model}"
    )
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    ticket_id = {"name": "ticket_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tandem", "version": "0.1.0"},
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Readiness: the store and Redis answer and the node is not draining",
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready (draining, or the store or Redis down)"},
                    },
                }
            },
            "/api/auth/login": {
                "post": {
                    "summary": "Exchange an agent's email and password for a short-lived token",
                    "requestBody": {"required": True, **_json("LoginRequest")},
                    "responses": {
                        "200": {"description": "token", **_json("LoginResponse")},
                        **_errors(400, 401, 429),
                    },
                }
            },
            "/api/auth/refresh": {
                "post": {
                    "summary": "A fresh token for a valid one, in the same sign-in session",
                    "security": bearer,
                    "responses": {
                        "200": {"description": "token", **_json("LoginResponse")},
                        **_errors(401),
                    },
                }
            },
            "/api/auth/logout": {
                "post": {
                    "summary": "End this sign-in session: its tokens are refused from now on",
                    "security": bearer,
                    "responses": {
                        "204": {"description": "signed out"},
                        **_errors(401),
                    },
                }
            },
            "/api/me": {
                "get": {
                    "summary": "The calling agent",
                    "security": bearer,
                    "responses": {
                        "200": {"description": "agent", **_json("AgentProfile")},
                        **_errors(401),
                    },
                }
            },
            "/api/tickets": {
                "get": {
                    "summary": "Tickets, newest first",
                    "security": bearer,
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {"enum": ["queued", "active", "closed"]},
                        },
                        {
                            "name": "q",
                            "in": "query",
                            "description": "text in customer, page, app fields or transcript",
                            "schema": {"type": "string", "pattern": "^[^\\u0000]*$"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                        },
                    ],
                    "responses": {
                        "200": {"description": "tickets", **_json("TicketList")},
                        **_errors(400, 401),
                    },
                }
            },
            "/api/tickets/{ticket_id}": {
                "get": {
                    "summary": "One ticket: context, transcript, attachments, timeline, pages",
                    "security": bearer,
                    "parameters": [ticket_id],
                    "responses": {
                        "200": {"description": "ticket", **_json("TicketDetail")},
                        **_errors(401, 403, 404),
                    },
                }
            },
            "/api/uploads": {
                "post": {
                    "summary": "A customer's photo or video, filed on their session's ticket",
                    "description": "Bearer: the customer's session token. Body: the raw bytes; "
                    "Content-Type: image/png, image/jpeg, image/webp, video/mp4 or video/webm.",
                    "security": bearer,
                    "requestBody": {
                        "required": True,
                        "content": {
                            t: {"schema": {"type": "string", "format": "binary"}}
                            for t in (
                                "image/png",
                                "image/jpeg",
                                "image/webp",
                                "video/mp4",
                                "video/webm",
                            )
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "the attachment, as filed on the ticket",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["attachment"],
                                        "properties": {"attachment": _ref("AttachmentInfo")},
                                    }
                                }
                            },
                        },
                        # 404: the token's ticket is gone; 409: the session has ended;
                        # 413/429: the ticket's upload quotas (docs/security.md).
                        **_errors(401, 404, 409, 413, 415, 422, 429),
                    },
                }
            },
            **_conversation_paths(bearer, ticket_id),
            "/api/tickets/{ticket_id}/attachments/{attachment_id}": {
                "get": {
                    "summary": "An attachment's bytes",
                    "security": bearer,
                    "parameters": [
                        ticket_id,
                        {
                            "name": "attachment_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {"description": "the bytes, with their content type"},
                        **_errors(401, 403, 404),
                    },
                }
            },
        },
    }


_MEDIA_TYPES = ("image/png", "image/jpeg", "image/webp", "video/mp4", "video/webm")


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _conversation_paths(
    bearer: list[dict[str, list[str]]], ticket_id: dict[str, Any]
) -> dict[str, Any]:
    """Internal notes, canned replies and files agents send (``edge/rest_desk.py``)."""
    site_id = _path_param("site_id")
    return {
        "/api/tickets/{ticket_id}/notes": {
            "get": {
                "summary": "The ticket's internal notes (agents only), oldest first",
                "security": bearer,
                "parameters": [ticket_id],
                "responses": {
                    "200": {"description": "notes", **_json("NoteList")},
                    **_errors(401, 403, 404),
                },
            },
            "post": {
                "summary": "Write an internal note on the ticket (never sent to the customer)",
                "description": "An agent of the session, or a supervisor or admin; during the "
                "session or after it. A resend with the same clientNoteId answers 200 with the "
                "first note.",
                "security": bearer,
                "parameters": [ticket_id],
                "requestBody": {"required": True, **_json("NoteCreate")},
                "responses": {
                    "201": {"description": "the note", **_json("NoteCreated")},
                    "200": {
                        "description": "a resend: the note as first made",
                        **_json("NoteCreated"),
                    },
                    **_errors(400, 401, 403, 404),
                },
            },
        },
        "/api/tickets/{ticket_id}/canned-replies": {
            "get": {
                "summary": "The ticket's site's canned replies, rendered for it and the caller",
                "security": bearer,
                "parameters": [ticket_id],
                "responses": {
                    "200": {"description": "replies", **_json("CannedReplyList")},
                    **_errors(401, 403, 404),
                },
            }
        },
        "/api/tickets/{ticket_id}/files": {
            "post": {
                "summary": "An agent of the live session sends the customer a photo or video",
                "description": "Body: the raw bytes; Content-Type: image/png, image/jpeg, "
                "image/webp, video/mp4 or video/webm. Checked like a customer's upload; the "
                "customer gets a signed link to it.",
                "security": bearer,
                "parameters": [ticket_id],
                "requestBody": {
                    "required": True,
                    "content": {
                        t: {"schema": {"type": "string", "format": "binary"}} for t in _MEDIA_TYPES
                    },
                },
                "responses": {
                    "201": {"description": "the file, as filed", **_json("AttachmentCreated")},
                    **_errors(400, 401, 403, 404, 409, 413, 415, 422, 429),
                },
            }
        },
        "/api/files/{ticket_id}/{attachment_id}": {
            "get": {
                "summary": "A file an agent sent, by the signed link the customer was given",
                "parameters": [
                    ticket_id,
                    _path_param("attachment_id"),
                    {"name": "exp", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "sig", "in": "query", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "the bytes, with their content type"},
                    "206": {"description": "the bytes asked for (Range)"},
                    "416": {"description": "a range outside the file"},
                    **_errors(403, 404),
                },
            }
        },
        "/api/sites/{site_id}/canned-replies": {
            "get": {
                "summary": "A site's canned replies (admins)",
                "security": bearer,
                "parameters": [site_id],
                "responses": {
                    "200": {"description": "replies", **_json("CannedReplyList")},
                    **_errors(401, 403, 404),
                },
            },
            "post": {
                "summary": "Add a canned reply, or replace the one with its shortcut (admins)",
                "description": "Variables in braces must be known ones (see variables in the "
                "list); a text naming any other is refused (400).",
                "security": bearer,
                "parameters": [site_id],
                "requestBody": {"required": True, **_json("CannedReplyCreate")},
                "responses": {
                    "201": {"description": "the reply", **_json("CannedReply")},
                    **_errors(400, 401, 403, 404),
                },
            },
        },
        "/api/sites/{site_id}/canned-replies/{shortcut}": {
            "delete": {
                "summary": "Remove a canned reply (admins)",
                "security": bearer,
                "parameters": [site_id, _path_param("shortcut")],
                "responses": {
                    "204": {"description": "removed"},
                    **_errors(401, 403, 404),
                },
            }
        },
    }
