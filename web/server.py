"""The production WSGI server (waitress) around the app, startable and stoppable like the AGI server."""
from __future__ import annotations

from typing import Any

from waitress.server import create_server

from ivr.config import Settings
from web import create_app


class WebServer:
    """A waitress server with the same serve_forever/shutdown shape as the FastAGI server."""

    def __init__(self, settings: Settings, host: str | None = None, port: int | None = None, app: Any = None) -> None:
        self._server = create_server(
            app or create_app(settings),
            host=host or settings.web_host,
            port=settings.web_port if port is None else port,
            threads=8,
            ident="ivr",
        )

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually bound."""
        return self._server.effective_host, self._server.effective_port

    def serve_forever(self) -> None:
        """Serve until shutdown."""
        self._server.run()

    def shutdown(self, grace_seconds: float = 5.0) -> None:
        """Stop accepting and close (waitress finishes requests it has read)."""
        self._server.close()
