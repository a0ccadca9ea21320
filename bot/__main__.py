"""`python -m bot [front|worker]`: polling, or the webhook server on $PORT when WEBHOOK_URL
is set; workers claim link stages from the database. Without an argument, both."""

from __future__ import annotations

import asyncio
import signal
import sys

from pydantic import ValidationError

from bot import eventloop
from bot.app import StartupError, build_application, running, set_heap_aside
from bot.config import Settings, describe_error
from bot.logs import setup_logging
from bot.services import Role

USAGE = "usage: python -m bot [front|worker]   (no argument: front and workers)"


async def serve(settings: Settings, role: Role) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(build_application(settings, role=role), settings):
        set_heap_aside()
        await stop.wait()


def main() -> int:
    try:
        role = Role(sys.argv[1]) if len(sys.argv) > 1 else Role.ALL
    except ValueError:
        print(USAGE, file=sys.stderr)
        return 2
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
        eventloop.run(serve(settings, role))
    except StartupError as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
