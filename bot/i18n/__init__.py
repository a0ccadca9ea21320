"""User-facing text: one module per language (en, zh), chosen by language_code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Texts:
    """Every sentence the bot says. Placeholders use str.format; values arrive escaped."""

    locale: str
    start: str
    help: str
    cmd_start: str
    cmd_help: str
    cmd_tags: str
    cmd_find: str
    no_links: str
    refused_scheme: str
    refused_blocked: str
    refused_too_long: str
    refused_malformed: str
    skipped_links: str
    too_fast: str
    not_allowed: str
    saved_on: str
    recapture: str
    failed_link: str
    capture_reasons: dict[str, str]
    http_status_note: str
    summary_heading: str
    summary_off: str
    summary_failed: str
    summary_reasons: dict[str, str]
    tags_none: str
    tags_header: str
    find_none: str
    find_header: str
    find_latest_header: str
    page_of: str
    link_gone: str
    stale_button: str
    db_down: str
    db_down_wait: str
    db_down_read: str
    internal_error: str
    summary_prompt: str
    # managing links (issue 12)
    btn_tags: str
    btn_delete: str
    btn_undo: str
    tags_how: str
    tags_how_none: str
    tag_added: str
    retag_no_link: str
    deleted_toast: str
    deleted_undo: str
    deleted_for_good: str
    undo_expired: str
    undo_conflict: str
    restored: str
    cmd_export: str
    cmd_stats: str
    export_empty: str
    export_progress: str
    export_done: str
    export_caption_html: str
    export_caption_json: str
    export_too_big: str
    import_reading: str
    import_progress: str
    import_done: str
    import_invalid: str
    import_too_big: str
    import_unknown: str
    import_malformed: str
    import_empty: str
    import_stopped: str
    import_cut: str
    import_busy: str
    stats: str
    stats_model: str
    stats_no_tokens: str
    stats_owner: str  # {total} {own} {browser} {state}
    stats_browser_open: str  # {since}
    stats_browser_closed: str  # {since}
    stats_browser_none: str
    tag_prompt: str
    help_manage: str
    import_how: str
    cmd_import: str
    # capture fidelity (issue 13)
    partial_note: str
    file_download_refused: str
    file_too_large: str
    file_kinds: dict[str, str]
    size_unknown: str
    btn_full_page: str
    btn_pdf: str
    btn_archive: str
    file_making: str
    file_captions: dict[str, str]
    file_truncated: str
    file_failed: str
    file_no_browser: str
    file_not_a_page: str
    # link-rot digest (issue 21)
    cmd_digest: str
    digest_header: str
    digest_when_week: str
    digest_when_days: str
    digest_every_week: str
    digest_every_days: str
    digest_states: dict[bool, str]
    digest_footer: str
    btn_snapshot: str
    digest_on: str
    digest_off: str
    digest_usage: str
    gone_since: str
    no_snapshot: str
    # the platform's pages (issue 17): /web, the menu button, and the pages' own words
    cmd_web: str
    web_intro: str
    web_private_only: str
    web_open_app: str
    menu_button: str
    library_button: str
    web_ui: dict[str, str]
    # hostile files and oversized records (issue 22)
    tags_dropped: str
    tags_full: str
    tags_more: str
    snapshot_refused: str
    undo_done: str
    import_capped: str
    import_encoding: str
    import_too_deep: str
    import_too_many: str
    import_too_slow: str
    import_too_costly: str


def texts_for(language_code: str | None) -> Texts:
    """Chinese for zh-* users, English otherwise."""
    from bot.i18n import en, zh

    if language_code and language_code.lower().startswith("zh"):
        return zh.TEXTS
    return en.TEXTS
