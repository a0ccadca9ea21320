"""`python -m bot`: polling, or the webhook server on $PORT when WEBHOOK_URL is set."""

from __future__ import annotations

import asyncio
import signal
import sys

from pydantic import ValidationError

from bot.app import StartupError, build_application, running
from bot.config import Settings, describe_error
from bot.logs import setup_logging


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(build_application(settings), settings):
        await stop.wait()


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        return 2
    secrets = [settings.token, settings.mongodb_uri.get_secret_value()]
    if settings.openai_api_key:
        secrets.append(settings.openai_api_key.get_secret_value())
    setup_logging(settings.log_level, secrets)
    try:
        asyncio.run(serve(settings))
    except StartupError as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
