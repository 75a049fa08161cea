"""The REST API under /api/v1 (SPEC 6): one blueprint per module."""

from __future__ import annotations

from flask import Flask

from webui import openapi
from webui.api import custody, events, feeds, log, map, registry, stats

BLUEPRINTS = (events.bp, log.bp, map.bp, registry.bp, custody.bp, stats.bp, feeds.bp,
              openapi.bp)


def init_app(app: Flask) -> None:
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
