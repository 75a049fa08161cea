"""Cookie sessions are for the HTML pages only: the API never opens one.

An API call is authenticated by its bearer token alone, so a browser's cookie can
never make a cross-site request count as its user's (no CSRF on /api/v1), and no
API request pays for reading a session.
"""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from webui.openapi import PREFIX


class PageSessions(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith(PREFIX + "/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    app.session_interface = PageSessions()
