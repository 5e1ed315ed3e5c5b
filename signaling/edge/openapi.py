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
