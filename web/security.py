"""Security headers on every answer and the client address behind trusted reverse proxies.

The Content-Security-Policy allows scripts only from this site's own files (no inline script,
no inline event handlers, no eval), so an injected `<script>` or `onerror=` does not run even
if escaping ever failed. Answers that may carry callers' data are never stored by a browser or
proxy: every page and API answer unless the view chose its own Cache-Control (static files,
audio). Behind IVR_TRUSTED_PROXIES (a number of hops: Werkzeug's ProxyFix; or the proxies'
addresses: `TrustedProxies`) the client address (rate limits, the audit log) and the scheme
come from X-Forwarded-For / -Proto.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    # Modern browsers: stylesheets only from files, style="" attributes allowed (heat maps, widths);
    # browsers without the -elem/-attr split fall back to the style-src line.
    "style-src 'self' 'unsafe-inline'",
    "style-src-elem 'self'",
    "style-src-attr 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",  # the recorded reply is previewed from a blob: URL
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))


def _headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.path.startswith("/api/"):
        headers["Cache-Control"] = "no-store"
    elif "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"  # pages: queues, messages and callers' numbers
    return response


class TrustedProxies:
    """WSGI middleware: when the peer is one of the trusted proxies, the client is the right-most
    X-Forwarded-For address that is not itself a trusted proxy (addresses further left were
    written by the client and prove nothing)."""

    def __init__(self, wsgi_app: Any, networks: Iterable[str]) -> None:
        self.wsgi_app = wsgi_app
        self.networks = tuple(ipaddress.ip_network(n) for n in networks)

    def trusted(self, address: str) -> bool:
        """True when `address` is one of the trusted proxies."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Rewrite REMOTE_ADDR and the scheme for requests that came through a trusted proxy."""
        peer = environ.get("REMOTE_ADDR", "")
        if self.trusted(peer):
            client = peer
            for address in reversed(environ.get("HTTP_X_FORWARDED_FOR", "").split(",")):
                address = address.strip()
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    break  # garbage: keep the last address a trusted proxy vouched for
                client = address
                if not self.trusted(address):
                    break
            environ["REMOTE_ADDR"] = client
            proto = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[-1].strip().lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
        return self.wsgi_app(environ, start_response)


def init_security(app: Flask) -> None:
    """Add the security headers to every answer; believe X-Forwarded-* from IVR_TRUSTED_PROXIES."""
    settings = app.config["IVR_SETTINGS"]
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0
        )
    elif settings.trusted_proxy_networks:
        app.wsgi_app = TrustedProxies(app.wsgi_app, settings.trusted_proxy_networks)  # type: ignore[method-assign]
    app.after_request(_headers)
