"""Webhook mode (the Procfile's `web:` process): binds $PORT and takes Telegram's POSTs."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from tests.conftest import free_port
from tests.harness import BotHarness


def start_update(update_id: int, user_id: int, language: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "Ann"},
            "from": {
                "id": user_id,
                "is_bot": False,
                "first_name": "Ann",
                "language_code": language,
            },
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def test_webhook_serves_port_and_checks_secret(harness_factory: Any) -> None:
    port = free_port()
    bot: BotHarness = await harness_factory(
        webhook_url="https://bot.example/hook/abc", port=str(port), webhook_secret="s3cret-value"
    )
    [hook] = bot.api.calls_of("setWebhook", ok_only=True)
    assert hook.params["url"] == "https://bot.example/hook/abc"
    assert hook.params["secret_token"] == "s3cret-value"
    bot.api.send_message(7, "hello")  # registers the chat with the fake; not delivered by polling
    url = f"http://127.0.0.1:{port}/hook/abc"
    async with aiohttp.ClientSession() as http:
        forged = await http.post(url, json=start_update(1, 7, "en"))
        assert forged.status == 403
        ok = await http.post(
            url,
            data=json.dumps(start_update(2, 7, "zh-hans")),
            headers={
                "X-Telegram-Bot-Api-Secret-Token": "s3cret-value",
                "Content-Type": "application/json",
            },
        )
        assert ok.status == 200
    reply = await bot.api.wait_for(lambda c: c.method == "sendMessage" and c.ok, timeout=20)
    assert "保存快照" in reply.result["text"]
    assert not bot.api.calls_of("getUpdates")
