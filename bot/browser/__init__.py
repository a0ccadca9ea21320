"""The browser: Chromium through Playwright, and everything a capture does in it
(navigation and settling, the shot, consent banners, files a link points at, files made
on demand, PDF rendering, the remote browser server). The only package that drives a page.
"""
