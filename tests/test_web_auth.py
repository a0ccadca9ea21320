"""The platform's pages over HTTP: who may see what, and what every answer carries.

Each refusal here is a guard of bot/web/ (auth.py, media.py, storage/websessions.py);
the pages themselves are driven in Chromium in tests/test_web_pages.py.
"""

from __future__ import annotations

import io
import re
import time
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from bson import ObjectId
from PIL import Image
from pydantic import ValidationError

from bot.web import initdata
from storage.models import utcnow
from storage.websessions import SESSION_IDLE, Sessions, SignIns, WebUser, token_hash
from tests.conftest import base_env, free_port, settings_for
from tests.harness import BotHarness
from tests.web_helpers import TOKEN, app_url, init_data, seed, signin_link

ANN, BOB = 42, 43


def tma(user_id: int, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": "tma " + init_data(user_id, **kwargs)}


async def get(url: str, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with aiohttp.ClientSession() as http, http.get(url, **kwargs) as response:
        body = await response.read()
        try:
            data = await response.json(content_type=None)
        except ValueError:
            data = body
        return response.status, data, response


# --- launch data ---------------------------------------------------------------------


def test_initdata_verified_as_telegram_documents() -> None:
    now = time.time()
    data = init_data(ANN, lang="zh-hans", name="安")
    launch = initdata.verify(data, TOKEN, now=now)
    assert (launch.user.user_id, launch.user.lang, launch.user.first_name) == (ANN, "zh-hans", "安")
    with pytest.raises(initdata.Forged):
        initdata.verify(data, "123456:OTHER-token", now=now)  # signed for another bot
    tampered = data.replace("%22id%22%3A42", "%22id%22%3A43")
    assert tampered != data
    with pytest.raises(initdata.Forged):
        initdata.verify(tampered, TOKEN, now=now)  # another user id under Ann's hash
    with pytest.raises(initdata.Expired):
        initdata.verify(init_data(ANN, auth_date=now - 25 * 3600), TOKEN, now=now)
    assert initdata.verify(init_data(ANN, auth_date=now - 23 * 3600), TOKEN, now=now)
    with pytest.raises(initdata.Malformed):
        initdata.verify("a=1&a=2", TOKEN, now=now)


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://links.example/app/", True),
        ("http://127.0.0.1:8080/", True),
        ("http://localhost:8080/app/", True),
        ("http://links.example/", False),  # Telegram would refuse it, and cookies leak
        ("http://198.18.0.1/", False),
    ],
)
def test_webapp_url_must_be_https_unless_local(url: str, accepted: bool) -> None:
    env = base_env("http://127.0.0.1:1", "mongodb://127.0.0.1:1/x", webapp_url=url)
    if accepted:
        assert str(settings_for(env).webapp_url) == url
    else:
        with pytest.raises(ValidationError, match="use https"):
            settings_for(env)


# --- refusals ------------------------------------------------------------------------


async def test_forged_or_old_launch_data_gets_no_data(bot: BotHarness) -> None:
    await seed(bot.store, ANN, "Ann's page", ["x"])
    url = app_url(bot) + "api/links"
    status, data, _ = await get(url, headers=tma(ANN))
    assert status == 200 and data["total"] == 1  # the real thing works
    forged = init_data(ANN, token="123456:SOMEONE-else")
    for headers, kind in (
        ({"Authorization": "tma " + forged}, "forged"),
        (tma(ANN, auth_date=time.time() - 25 * 3600), "expired"),
        ({"Authorization": "tma user=%7B%22id%22%3A42%7D&auth_date=1"}, "forged"),
        ({}, "signed_out"),
    ):
        status, data, _ = await get(url, headers=headers)
        assert status == 401, kind
        assert data["error"] == kind and "items" not in data
        assert data["message"]  # a clear sentence for the page to show


async def test_another_users_link_thumbnail_and_file_are_404_like_missing_ones(
    bot: BotHarness,
) -> None:
    ann = await seed(
        bot.store, ANN, "Ann's secret", ["private"], url=bot.pages.url("/article/secret")
    )
    bob = await seed(bot.store, BOB, "Bob's page", ["mine"])
    base = app_url(bot)
    # Ann has a PDF of it: what Bob is refused exists
    files = base + f"api/links/{ann.id}/files/pdf"
    async with aiohttp.ClientSession(headers=tma(ANN)) as http, http.post(files) as made:
        assert made.status == 200
        pdf_url = (await made.json())["url"]
    status, body, _ = await get(base.rstrip("/") + pdf_url)
    assert status == 200 and isinstance(body, bytes) and body.startswith(b"%PDF")
    _, bobs, _ = await get(base + f"api/links/{bob.id}", headers=tma(BOB))
    missing = str(ObjectId())
    answers = []
    for link_id in (str(ann.id), missing):
        status, data, _ = await get(base + f"api/links/{link_id}", headers=tma(BOB))
        answers.append((status, data))
        # Bob's own signed thumbnail link, pointed at Ann's link (or at nothing)
        thumb = bobs["thumb"].replace(str(bob.id), link_id)
        status, data, _ = await get(base.rstrip("/") + thumb)
        answers.append((status, data))
        # Ann's user id in the link, under a signature Bob made up
        forged = re.sub(r"u=\d+", f"u={ANN}", thumb)
        status, data, _ = await get(base.rstrip("/") + forged)
        answers.append((status, data))
        status, data, _ = await get(
            base + f"media/pdf/{link_id}?u={ANN}&v=pdf&e={int(time.time()) + 3600}&s=x"
        )
        answers.append((status, data))
        # Bob's own signature, for Bob, on Ann's file
        signed = pdf_url.replace(f"u={ANN}", f"u={BOB}").replace(str(ann.id), link_id)
        status, data, _ = await get(base.rstrip("/") + signed)
        answers.append((status, data))
        status, data, _ = await get(base + f"api/links/{link_id}/events", headers=tma(BOB))
        answers.append((status, data))
    async with aiohttp.ClientSession(headers=tma(BOB)) as http:
        for method, path, body in (
            ("POST", "tags", {"tags": ["stolen"]}),
            ("POST", "files/pdf", None),
            ("POST", "recapture", None),
            ("DELETE", "", None),
        ):
            url = base + f"api/links/{ann.id}/{path}".rstrip("/")
            async with http.request(method, url, json=body) as response:
                answers.append((response.status, await response.json()))
        undos = []
        for link_id in (str(ann.id), missing):  # nothing of Ann's to undo, as for none
            async with http.post(base + f"api/links/{link_id}/undo") as response:
                undos.append((response.status, await response.json()))
        assert undos[0] == undos[1] and undos[0][0] == 410
    assert [a for a in answers if a != (404, {"error": "not_found"})] == []
    kept = await bot.store.get(ANN, ann.id)
    assert kept is not None and kept.tags == ["private"]  # Ann's link untouched
    # Bob's own thumbnail is served, with its real type and validators
    status, body, response = await get(base.rstrip("/") + bobs["thumb"])
    assert status == 200 and response.content_type == "image/jpeg"
    assert isinstance(body, bytes) and 1_000 < len(body) <= 30_000
    etag = response.headers["ETag"]
    assert "private" in response.headers["Cache-Control"]
    status, _, _ = await get(base.rstrip("/") + bobs["thumb"], headers={"If-None-Match": etag})
    assert status == 304


async def test_allowed_users_applies_to_the_pages(harness_factory: Any) -> None:
    bot: BotHarness = await harness_factory(allowed_users=str(ANN))
    await seed(bot.store, BOB, "Bob's page", ["x"])
    base = app_url(bot)
    status, data, _ = await get(base + "api/links", headers=tma(BOB))
    assert status == 403 and data["error"] == "not_allowed" and "items" not in data
    # a browser session minted for a stranger is refused the same way
    token = await Sessions(bot.store.db).start(WebUser(BOB))
    status, data, _ = await get(base + "api/links", cookies={"linksnap_session": token})
    assert status == 403 and data["error"] == "not_allowed"
    status, data, _ = await get(base + "api/links", headers=tma(ANN))
    assert status == 200


# --- browser sessions ------------------------------------------------------------------


async def signed_in(bot: BotHarness, user: int) -> tuple[aiohttp.ClientSession, str]:
    """A browser (cookie jar) signed in through a /web link; and the CSRF token."""
    link = await signin_link(bot, user)
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    http = aiohttp.ClientSession(cookie_jar=jar)
    async with http.get(link) as page:
        assert page.status == 200
        assert "Ann" in await page.text()  # whom it signs in; nothing spent yet
    async with http.post(link, allow_redirects=False) as signin:
        assert signin.status == 303
        cookie = signin.cookies["linksnap_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
    async with http.get(app_url(bot) + "api/me") as me:
        data = await me.json()
    return http, str(data["csrf"])


async def test_signin_link_is_single_use_and_writes_need_the_csrf_token(
    bot: BotHarness,
) -> None:
    record = await seed(bot.store, ANN, "Ann's page", ["old"])
    http, csrf = await signed_in(bot, ANN)
    base = app_url(bot)
    async with http:
        async with http.get(base + "api/links") as listing:
            assert (await listing.json())["total"] == 1
        url = base + f"api/links/{record.id}/tags"
        async with http.post(url, json={"tags": ["new"]}) as refused:
            assert refused.status == 403
            assert (await refused.json())["error"] == "csrf"
        async with http.post(url, json={"tags": ["new"]}, headers={"X-CSRF-Token": "x" * 32}) as r:
            assert r.status == 403
        stored = await bot.store.get(ANN, record.id)
        assert stored is not None and stored.tags == ["old"]  # nothing written
        async with http.post(url, json={"tags": ["new"]}, headers={"X-CSRF-Token": csrf}) as ok:
            assert ok.status == 200 and (await ok.json())["tags"] == ["new"]
        async with http.post(base + "api/signout", headers={"X-CSRF-Token": csrf}) as out:
            assert out.status == 200
        async with http.get(base + "api/links") as after:
            assert after.status == 401


async def test_spent_expired_or_forged_signin_links_sign_no_one_in(bot: BotHarness) -> None:
    base = app_url(bot)
    signins = SignIns(bot.store.db)
    token = await signins.mint(WebUser(ANN, "en", "Ann"))
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.post(base + f"signin/{token}", allow_redirects=False) as first:
            assert first.status == 303
        for method in ("get", "post"):  # the same link again: spent
            async with http.request(method, base + f"signin/{token}", allow_redirects=False) as r:
                assert r.status == 410
                assert "used or has run out" in await r.text()
                assert "linksnap_session" not in r.cookies
    old = await signins.mint(WebUser(ANN), now=utcnow() - timedelta(minutes=11))
    for link in (old, "forged-token-that-was-never-made"):
        async with aiohttp.ClientSession() as http, http.post(base + f"signin/{link}") as r:
            assert r.status == 410 and "linksnap_session" not in r.cookies
    # a link is kept as the hash of its token, never as the token
    kept = await signins.mint(WebUser(ANN))
    assert await bot.store.db["web_signins"].find_one({"_id": kept}) is None
    assert await bot.store.db["web_signins"].find_one({"_id": token_hash(kept)}) is not None


async def test_a_session_ends_after_30_idle_days(bot: BotHarness) -> None:
    await seed(bot.store, ANN, "Ann's page", ["x"])
    sessions = Sessions(bot.store.db)
    token = await sessions.start(WebUser(ANN))
    url = app_url(bot) + "api/links"
    status, _, _ = await get(url, cookies={"linksnap_session": token})
    assert status == 200
    await sessions.coll.update_one(
        {"_id": token_hash(token)},
        {"$set": {"last_seen": utcnow() - SESSION_IDLE - timedelta(minutes=1)}},
    )
    status, data, _ = await get(url, cookies={"linksnap_session": token})
    assert status == 401 and data["error"] == "signed_out"


async def test_using_a_session_keeps_it_alive(bot: BotHarness) -> None:
    """30 days *idle*: a session used on day 29 lasts another 30 days from then."""
    await seed(bot.store, ANN, "Ann's page", ["x"])
    sessions = Sessions(bot.store.db)
    token = await sessions.start(WebUser(ANN))
    nearly = utcnow() - SESSION_IDLE + timedelta(hours=2)
    await sessions.coll.update_one({"_id": token_hash(token)}, {"$set": {"last_seen": nearly}})
    url = app_url(bot) + "api/links"
    status, _, _ = await get(url, cookies={"linksnap_session": token})
    assert status == 200
    doc = await sessions.coll.find_one({"_id": token_hash(token)})
    assert doc is not None and doc["last_seen"] > utcnow() - timedelta(minutes=5)
    # three hours on, past the old idle limit: still signed in
    later = utcnow() + timedelta(hours=3)
    assert await sessions.get(token, now=later) is not None


async def test_a_screenshot_is_served_with_its_real_type(bot: BotHarness) -> None:
    png = io.BytesIO()
    Image.new("RGB", (1280, 800), "#3a7bd5").save(png, "PNG")
    record = await seed(bot.store, ANN, "A PNG shot", ["x"], image=png.getvalue())
    base = app_url(bot)
    _, detail, _ = await get(base + f"api/links/{record.id}", headers=tma(ANN))
    status, body, response = await get(base.rstrip("/") + detail["shot"])
    assert status == 200 and response.content_type == "image/png"
    assert isinstance(body, bytes) and body.startswith(b"\x89PNG")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_an_https_webapp_url_makes_the_session_cookie_secure(harness_factory: Any) -> None:
    port = free_port()
    bot: BotHarness = await harness_factory(
        webapp_url="https://links.example/app/", web_listen=f"127.0.0.1:{port}"
    )
    reply = await bot.command(ANN, "/web")
    [link] = re.findall(r"https://links\.example/app/signin/\S+", reply.result["text"])
    local = link.replace("https://links.example/", f"http://127.0.0.1:{port}/")
    async with aiohttp.ClientSession() as http, http.post(local, allow_redirects=False) as r:
        assert r.status == 303
        cookie = r.cookies["linksnap_session"]
        assert cookie["secure"] and cookie["httponly"] and cookie["path"] == "/app/"


# --- what every answer carries -----------------------------------------------------------


async def test_pages_carry_a_strict_policy_and_serve_the_client_script(bot: BotHarness) -> None:
    base = app_url(bot)
    status, body, response = await get(base)
    assert status == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors https://web.telegram.org" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = body.decode() if isinstance(body, bytes) else str(body)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline script anywhere
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', html)
    assert scripts == ["/static/telegram-web-app.js", "/static/app.js"]
    for path in scripts:
        status, script, response = await get(base.rstrip("/") + path)
        assert status == 200 and "javascript" in response.content_type
        assert len(script) > 1000
    _, sdk, _ = await get(base + "static/telegram-web-app.js")
    assert b"window.Telegram" in sdk and b"tgWebAppData" in sdk


# --- the menu button, and web_app buttons only over https -----------------------------------


def web_app_urls(bot: BotHarness) -> list[str]:
    found = []
    for call in bot.api.calls:
        markup = call.params.get("reply_markup") or {}
        for row in markup.get("inline_keyboard", []):
            found += [b["web_app"]["url"] for b in row if "web_app" in b]
        button = call.params.get("menu_button") or {}
        if "web_app" in button:
            found.append(button["web_app"]["url"])
    return found


async def test_https_webapp_url_sets_the_menu_button_and_library_buttons(
    harness_factory: Any,
) -> None:
    bot: BotHarness = await harness_factory(webapp_url="https://links.example/app/")
    [menu] = bot.api.calls_of("setChatMenuButton", ok_only=True)
    assert menu.params["menu_button"] == {
        "type": "web_app",
        "text": "Library",
        "web_app": {"url": "https://links.example/app/"},
    }
    await seed(bot.store, ANN, "Ann's page", ["ai", "tools"])
    start = len(bot.api.calls)
    bot.send(ANN, "/find #ai #tools", language_code="zh-hans")
    found = await bot.api.wait_for(
        lambda c: c.method == "sendMessage" and c.ok, timeout=20, since=start
    )
    [[button]] = found.params["reply_markup"]["inline_keyboard"][-1:]
    assert button["text"] == "📚 在链接库中打开"
    assert button["web_app"]["url"] == "https://links.example/app/?view=manage&tags=ai%2Ctools"
    start = len(bot.api.calls)
    bot.send(ANN, "/web", language_code="zh-hans")
    web = await bot.api.wait_for(
        lambda c: c.method == "sendMessage" and c.ok, timeout=20, since=start
    )
    assert "https://links.example/app/signin/" in web.result["text"]
    assert web.params["reply_markup"]["inline_keyboard"][0][0]["web_app"]["url"] == (
        "https://links.example/app/?view=manage"
    )
    mine = await bot.api.wait_for(
        lambda c: c.method == "setChatMenuButton" and c.params.get("chat_id") == ANN, timeout=20
    )
    assert mine.ok and mine.params["menu_button"]["text"] == "链接库"


async def test_local_http_webapp_url_sends_no_web_app_button(bot: BotHarness) -> None:
    await seed(bot.store, ANN, "Ann's page", ["ai"])
    for text in ("/find #ai", "/tags", "/web"):
        start = len(bot.api.calls)
        bot.send(ANN, text)
        await bot.api.wait_for(
            lambda c: c.method == "sendMessage" and c.ok, timeout=20, since=start
        )
    assert web_app_urls(bot) == []
    assert not bot.api.calls_of("setChatMenuButton")
    reply = bot.api.calls_of("sendMessage", ANN, ok_only=True)[-1]
    assert re.search(r"http://127\.0\.0\.1:\d+/signin/\S+", reply.result["text"])  # the link only
    assert reply.params["link_preview_options"] == {"is_disabled": True}


async def test_web_in_a_group_sends_no_signin_link(bot: BotHarness) -> None:
    start = len(bot.api.calls)
    bot.send(ANN, "/web", chat_id=-100, chat_type="group")
    reply = await bot.api.wait_for(
        lambda c: c.method == "sendMessage" and c.ok, timeout=20, since=start
    )
    assert "private chat" in reply.result["text"] and "signin" not in reply.result["text"]
    assert await bot.store.db["web_signins"].count_documents({}) == 0


async def test_webhook_and_pages_share_one_port(harness_factory: Any) -> None:
    port = free_port()
    bot: BotHarness = await harness_factory(
        webhook_url="https://bot.example/hook/abc",
        port=str(port),
        webhook_secret="s3cret-value",
        webapp_url="https://bot.example/",
    )
    await seed(bot.store, ANN, "Ann's page", ["x"])
    status, data, _ = await get(f"http://127.0.0.1:{port}/api/links", headers=tma(ANN))
    assert status == 200 and data["total"] == 1
    assert bot.api.calls_of("setWebhook", ok_only=True)
