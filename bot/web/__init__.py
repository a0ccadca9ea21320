"""The platform's pages (链接快照平台): 添加链接 (add a link) and link管理 (manage links).

One small web app served by the front: a Telegram Mini App (menu button, `web_app`
buttons) and the same pages in any browser through a sign-in link from /web. Read in
order: bot/web_address.py (where it lives), initdata.py and auth.py (who is asking),
server.py (the aiohttp server, which may also take the webhook), pages.py (HTML),
api_library.py and api_actions.py (the JSON API), progress.py (live progress),
media.py (thumbnails, screenshots, files). The page itself is static/.
"""
