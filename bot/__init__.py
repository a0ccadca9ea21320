"""linksnap: a Telegram bot that keeps snapshots of links, found again by tag."""
