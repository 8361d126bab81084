"""A real A2A agent of the v0.3 era: a2a-sdk 0.3 (pinned in requirements-a2a03.txt), the Python reference server.

Usage: a2a03_agent.py <port>

JSON-RPC at /rpc (A2AFastAPIApplication), HTTP+JSON at /rest (A2ARESTFastAPIApplication: /rest/v1/...), its 0.3
card at /.well-known/agent-card.json naming its own loopback URLs, push notifications sent by the SDK's
BasePushNotificationSender (the Task, as 0.3 defines). Behaviour by the text of the message, as the JS test agent
(test/helpers/a2a-agent.ts): `slow` stays working until cancelled; anything else is echoed as an artifact, completed.
Prints `ready` once it listens.
"""
import asyncio
import sys

import httpx
import uvicorn
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.apps import A2AFastAPIApplication, A2ARESTFastAPIApplication
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.tasks import BasePushNotificationSender, InMemoryPushNotificationConfigStore, InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Part, TextPart
from a2a.utils import new_task

CANCELLED: set[str] = set()


class Echo(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        task = context.current_task or new_task(context.message)
        if context.current_task is None:
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        if text == "slow":
            while task.id not in CANCELLED:
                await asyncio.sleep(0.01)
            return
        await updater.add_artifact([Part(root=TextPart(text=f"echo: {text}"))], name="echo")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        CANCELLED.add(context.task_id)
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def main(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    card = AgentCard(
        name="python-0.3-agent",
        description="An a2a-sdk 0.3 agent",
        url=f"{base}/rpc",
        preferred_transport="JSONRPC",
        additional_interfaces=[AgentInterface(url=f"{base}/rpc", transport="JSONRPC"), AgentInterface(url=f"{base}/rest", transport="HTTP+JSON")],
        version="1.0.0",
        capabilities=AgentCapabilities(streaming=True, push_notifications=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="Echo", description="Echoes the text back", tags=["test"])],
    )
    configs = InMemoryPushNotificationConfigStore()
    handler = DefaultRequestHandler(
        agent_executor=Echo(),
        task_store=InMemoryTaskStore(),
        push_config_store=configs,
        push_sender=BasePushNotificationSender(httpx.AsyncClient(), configs),
    )
    app = A2AFastAPIApplication(agent_card=card, http_handler=handler).build(rpc_url="/rpc")
    rest = A2ARESTFastAPIApplication(agent_card=card, http_handler=handler).build(rpc_url="/rest")
    app.mount("/", rest)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        print("ready", flush=True)
        await task

    asyncio.run(serve())


if __name__ == "__main__":
    main(int(sys.argv[1]))
