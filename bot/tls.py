"""The process's one TLS context for its HTTPS clients (the Bot API's, the model's).

httpx makes a context for each client it builds, loading every CA certificate (~25 ms
of CPU); PTB builds two clients for each Application and `openai` one more.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The context httpx would make by itself (certifi's CAs, or SSL_CERT_FILE/DIR)."""
    return httpx.create_ssl_context()
