"""`alluvial serve`: the web app on waitress, a production WSGI server (SPEC 6)."""

from __future__ import annotations

import logging

import click

from ledger.cli.app import Context, cli, pass_ctx

# waitress refuses bodies past this before the app sees them; the app answers 413
# problem+json past its own 1 MiB limit (webui.http.MAX_BODY), so only bodies beyond
# this get waitress's plain 413.
WAITRESS_MAX_BODY = 8 << 20
SEND_BYTES = 18000  # waitress 2's default: two jumbo-frame payloads


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, printed on stderr).")
@click.option("--threads", default=16, show_default=True, type=click.IntRange(1, 256),
              help="Worker threads: requests served at once.")
@pass_ctx
def serve(ctx: Context, host: str, port: int, threads: int) -> None:
    """Serve the web pages and the /api/v1 REST API until interrupted.

    Writes are committed, a group of concurrent ones at a time, by a second process
    that this one starts and stops (and restarts, should it die).
    """
    from waitress import create_server

    from webui import create_app, reqlog

    app = create_app({"DATABASE_URL": ctx.settings.database_url,
                      "LOG_KEY": str(ctx.settings.log_key_path),
                      "LOG_ORIGIN": ctx.settings.origin,
                      "SECRET_KEY": ctx.settings.secret_key,
                      # group commits in a process of their own (webui.writer_process)
                      "WRITER_PROCESS": True})
    reqlog.to_stderr()
    # "Task queue depth is N" is waitress thinking aloud under load, not an error.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # poll() instead of select(): cheaper per loop turn, and no FD_SETSIZE ceiling.
    server = create_server(app, host=host, port=port, threads=threads,
                           max_request_body_size=WAITRESS_MAX_BODY, expose_tracebacks=False,
                           ident="alluvial", clear_untrusted_proxy_headers=True,
                           asyncore_use_poll=True)
    # Waitress 3 sends each write at once (send_bytes=1): the status line and headers,
    # then the body, as two sends and two wake-ups of the client for every small JSON
    # answer. Buffering up to one 18000-byte chunk sends a small response whole, in one
    # send from the event loop; a large one (a bundle) still streams. Set on the server's
    # adjustments rather than passed in, where waitress 3 deprecates it: a waitress
    # without the setting simply ignores the attribute.
    server.adj.send_bytes = SEND_BYTES
    click.echo(f"Serving Alluvial Ledger on http://{server.effective_host}:"
               f"{server.effective_port}/ (API under /api/v1)", err=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        services = app.extensions["alluvial"]
        services.writer.close()
        services.ledger.engine.dispose()
