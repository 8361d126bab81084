"""The official Python A2A client (a2a-sdk, pinned in requirements-a2a.txt) through the gateway.

Usage: a2a_client.py <agent URL at the gateway> <bearer token>

The client is built only from the agent card the gateway serves (create_client resolves the card at
<url>/.well-known/agent-card.json). For each binding (JSON-RPC, HTTP+JSON) it sends a message (non-streaming),
streams one, and gets the task back. Prints one JSON object with what it saw.
"""
import asyncio
import json
import sys

import httpx
from a2a.client import ClientConfig, create_client
from a2a.helpers.proto_helpers import get_artifact_text, new_text_message
from a2a.types import GetTaskRequest, Role, SendMessageRequest
from google.protobuf.json_format import MessageToDict


async def run(url: str, token: str) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    out: dict = {}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        for binding in ("JSONRPC", "HTTP+JSON"):
            result: dict = {}
            # Non-streaming send.
            client = await create_client(
                url,
                client_config=ClientConfig(streaming=False, httpx_client=http, supported_protocol_bindings=[binding]),
                resolver_http_kwargs={"headers": headers},
            )
            card = await client.get_card() if hasattr(client, "get_card") else None
            if card is not None:
                result["card_urls"] = sorted({i.url for i in card.supported_interfaces})
                result["skills"] = [s.id for s in card.skills]
            task_id = None
            async for event in client.send_message(SendMessageRequest(message=new_text_message("from python", role=Role.ROLE_USER))):
                d = MessageToDict(event)
                if "task" in d:
                    task_id = d["task"]["id"]
                    result["send_state"] = d["task"]["status"]["state"]
                    result["send_text"] = "".join(get_artifact_text(a) for a in event.task.artifacts)
            task = await client.get_task(GetTaskRequest(id=task_id))
            result["get_id_matches"] = task.id == task_id
            # Streaming send: the kinds of events, in order.
            streaming = await create_client(
                url,
                client_config=ClientConfig(streaming=True, httpx_client=http, supported_protocol_bindings=[binding]),
                resolver_http_kwargs={"headers": headers},
            )
            kinds = []
            async for event in streaming.send_message(SendMessageRequest(message=new_text_message("streamed from python", role=Role.ROLE_USER))):
                kinds.append(event.WhichOneof("payload"))
            result["stream_kinds"] = kinds
            out[binding] = result
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(sys.argv[1], sys.argv[2]))))
