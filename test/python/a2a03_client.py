"""The official Python A2A client of the v0.3 era (a2a-sdk 0.3, pinned in requirements-a2a03.txt) through the gateway.

Usage: a2a03_client.py <agent URL at the gateway> <bearer token> <another identity's bearer token> [webhook URL]

The client is built only from the 0.3 agent card the gateway serves (ClientFactory.connect resolves it at
<url>/.well-known/agent-card.json). For each binding (JSONRPC, HTTP+JSON) it sends a message, gets the task, streams
one, cancels a task still working, resubscribes to a task that has ended, and lets the other identity try to get the
first task; with a webhook URL, it sets a push-notification config on a working task and reads it back. Prints one JSON object with what it saw (errors as their type and JSON-RPC code or HTTP status).
"""
import asyncio
import json
import sys
import uuid

import httpx
from a2a.client import ClientConfig, ClientFactory
from a2a.types import (
    GetTaskPushNotificationConfigParams,
    Message,
    MessageSendConfiguration,
    Part,
    PushNotificationConfig,
    Role,
    TaskIdParams,
    TaskPushNotificationConfig,
    TaskQueryParams,
    TextPart,
)


def text_message(text: str) -> Message:
    return Message(role=Role.user, parts=[Part(root=TextPart(text=text))], message_id=str(uuid.uuid4()))


def error_of(e: BaseException) -> dict:
    out: dict = {"type": type(e).__name__}
    rpc = getattr(e, "error", None)
    if rpc is not None and hasattr(rpc, "code"):
        out["code"] = rpc.code
    status = getattr(e, "status_code", None)
    if status is not None:
        out["status"] = status
    return out


async def run(url: str, token: str, other: str, webhook: str | None) -> dict:
    out: dict = {}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http, httpx.AsyncClient(
        headers={"Authorization": f"Bearer {other}"}, timeout=30
    ) as other_http:

        async def connect(binding: str, streaming: bool, client: httpx.AsyncClient):
            config = ClientConfig(streaming=streaming, httpx_client=client, supported_transports=[binding], use_client_preference=True)
            return await ClientFactory.connect(url, client_config=config, resolver_http_kwargs={"headers": dict(client.headers)})

        for binding in ("JSONRPC", "HTTP+JSON"):
            result: dict = {}
            client = await connect(binding, False, http)
            card = await client.get_card()
            result["card"] = {
                "url": card.url,
                "preferred_transport": card.preferred_transport,
                "additional": sorted(f"{i.transport} {i.url}" for i in card.additional_interfaces or []),
                "protocol_version": card.protocol_version,
                "security": [list(s.keys()) for s in card.security or []],
                "signatures": card.signatures,
            }
            task_id = None
            async for event in client.send_message(text_message("from python 0.3")):
                task, _ = event
                task_id = task.id
                result["send_state"] = task.status.state.value
                result["send_text"] = "".join(p.root.text for a in task.artifacts or [] for p in a.parts)
            got = await client.get_task(TaskQueryParams(id=task_id, history_length=1))
            result["get"] = {"id_matches": got.id == task_id, "history": len(got.history or [])}
            streaming = await connect(binding, True, http)
            try:
                async for _ in streaming.resubscribe(TaskIdParams(id=task_id)):
                    pass
                result["resubscribe_ended"] = {"type": "none"}
            except Exception as e:  # noqa: BLE001 - what the client raises is what is checked
                result["resubscribe_ended"] = error_of(e)
            # Another identity: the task does not exist for it.
            bob = await connect(binding, False, other_http)
            try:
                await bob.get_task(TaskQueryParams(id=task_id))
                result["other_get"] = {"type": "none"}
            except Exception as e:  # noqa: BLE001
                result["other_get"] = error_of(e)
            bob_streaming = await connect(binding, True, other_http)
            try:
                async for _ in bob_streaming.resubscribe(TaskIdParams(id=task_id)):
                    pass
                result["other_resubscribe"] = {"type": "none"}
            except Exception as e:  # noqa: BLE001
                result["other_resubscribe"] = error_of(e)
            try:
                hijack = text_message("continue someone else's task")
                hijack.task_id = task_id
                async for _ in bob_streaming.send_message(hijack):
                    pass
                result["other_stream"] = {"type": "none"}
            except Exception as e:  # noqa: BLE001
                result["other_stream"] = error_of(e)
            try:
                await bob.cancel_task(TaskIdParams(id=task_id))
                result["other_cancel"] = {"type": "none"}
            except Exception as e:  # noqa: BLE001
                result["other_cancel"] = error_of(e)
            # A task still working (answered at once), then cancelled.
            slow_id = None
            async for event in client.send_message(text_message("slow"), configuration=MessageSendConfiguration(blocking=False)):
                slow_id = event[0].id
            if webhook is not None:
                hook = f"{webhook}/{binding}"
                config = PushNotificationConfig(id="cfg-1", url=hook, token="py03")
                created = await client.set_task_callback(TaskPushNotificationConfig(task_id=slow_id, push_notification_config=config))
                got_config = await client.get_task_callback(GetTaskPushNotificationConfigParams(id=slow_id, push_notification_config_id="cfg-1"))
                result["push"] = {"set_url": created.push_notification_config.url == hook, "get_url": got_config.push_notification_config.url == hook}
            cancelled = await client.cancel_task(TaskIdParams(id=slow_id))
            result["cancel_state"] = cancelled.status.state.value
            # Streaming: the kinds of events, in order (`final` on status updates).
            kinds = []
            async for event in streaming.send_message(text_message("streamed from python 0.3")):
                _, update = event
                kinds.append("task" if update is None else f"{update.kind}{':final' if getattr(update, 'final', False) else ''}")
            result["stream"] = kinds
            out[binding] = result
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None))))
