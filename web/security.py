"""Security headers on every answer and the client address behind trusted reverse proxies.

The Content-Security-Policy allows scripts only from this site's own files (no inline script,
no inline event handlers, no eval), so an injected `<script>` or `onerror=` does not run even
if escaping ever failed. Answers that may carry callers' data are never stored by a browser or
proxy: every page and API answer unless the view chose its own Cache-Control (static files,
audio). Behind IVR_TRUSTED_PROXIES hops Werkzeug's ProxyFix takes the client address (rate
limits, the audit log) and the scheme from X-Forwarded-For / -Proto.
"""
from __future__ import annotations

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


def init_security(app: Flask) -> None:
    """Add the security headers to every answer; believe X-Forwarded-* from IVR_TRUSTED_PROXIES hops."""
    hops = app.config["IVR_SETTINGS"].trusted_proxies
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0
        )
    app.after_request(_headers)
