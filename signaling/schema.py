"""The JSON Schema of every wire message, generated from the models of ``signaling.protocol``.

``python -m signaling.schema > docs/protocol.schema.json`` writes it; a test keeps the committed
file equal to what the models say, so client writers (and the JS) can validate against it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic.json_schema import models_json_schema

from signaling.protocol import CLIENT_EVENTS, PROTOCOL_VERSION, SERVER_EVENTS, Message


def protocol_schema() -> dict[str, Any]:
    models: list[type[Message]] = [*CLIENT_EVENTS.values(), *SERVER_EVENTS]
    keyed, schema = models_json_schema(
        [(model, "validation") for model in models],
        by_alias=True,
        title=f"Tandem wire protocol v{PROTOCOL_VERSION}",
        ref_template="#/$defs/{model}",
    )

    def ref(model: type[Message]) -> str:
        return str(keyed[(model, "validation")]["$ref"])

    schema["clientEvents"] = {
        name: {"senders": sorted(model.senders), "payload": ref(model)}
        for name, model in CLIENT_EVENTS.items()
    }
    schema["serverEvents"] = {
        model.model_fields["type"].default: {"payload": ref(model)} for model in SERVER_EVENTS
    }
    return schema


def render() -> str:
    return json.dumps(protocol_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
