"""linksnap: a Telegram bot that keeps snapshots of links, found again by tag."""

import os

# Opt in to PTB's future behaviour (RetryAfter.retry_after as a timedelta) now, so the
# rate-limit code is written once against it and no deprecation warning fires.
os.environ.setdefault("PTB_TIMEDELTA", "1")
