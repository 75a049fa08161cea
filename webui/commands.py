"""The commands that start the web layer: `alluvial serve` (the app on waitress, a production
WSGI server) and `alluvial demo` (a fresh ledger with the scenario, then the server), SPEC 6.

They live here, with the web layer they start, so that `ledger` never imports `webui`; the
`alluvial` group finds them through the ``alluvial.commands`` entry points in pyproject.toml.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from collections import Counter
from pathlib import Path

import click

from ledger.cli.app import Context, pass_ctx

# waitress refuses bodies past this before the app sees them; the app answers 413
# problem+json past its own 1 MiB limit (webui.http.MAX_BODY), so only bodies beyond
# this get waitress's plain 413.
WAITRESS_MAX_BODY = 8 << 20
SEND_BYTES = 18000  # waitress 2's default: two jumbo-frame payloads


def _port_in_use(host: str, port: int, command: str) -> click.BadParameter:
    return click.BadParameter(
        f"port {port} on {host} is in use (another `alluvial serve` or `alluvial demo`, or "
        f"another program): choose a free one with --port, e.g. `alluvial {command} --port "
        f"{port + 1 if port < 65535 else 8000}`, or stop what listens on {port}.",
        param_hint="--port")


def check_port(host: str, port: int, command: str) -> None:
    """Refuse, naming --port, a port some other program listens on (issue 19): before the
    command loads or writes anything, so that a taken port costs a second, not a demo.
    SO_REUSEADDR as waitress sets it: a port whose last connections linger is free."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise _port_in_use(host, port, command) from None
            raise click.BadParameter(f"cannot listen on {host} port {port}: {exc.strerror}.",
                                     param_hint="--host/--port") from None


@click.command()
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
    check_port(host, port, "serve")
    from waitress import create_server

    from webui import create_app, reqlog
    from webui.memory import cap_arenas

    cap_arenas()  # before the request threads start: see webui.memory
    app = create_app({"DATABASE_URL": ctx.settings.database_url,
                      "LOG_KEY": str(ctx.settings.log_key_path),
                      "LOG_ORIGIN": ctx.settings.origin,
                      "SECRET_KEY": ctx.settings.secret_key,
                      "LATE_DAYS": ctx.settings.late_days,
                      # group commits in a process of their own (webui.writer_process)
                      "WRITER_PROCESS": True})
    reqlog.to_stderr()
    # "Task queue depth is N" is waitress thinking aloud under load, not an error.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # poll() instead of select(): cheaper per loop turn, and no FD_SETSIZE ceiling.
    try:
        server = create_server(app, host=host, port=port, threads=threads,
                               max_request_body_size=WAITRESS_MAX_BODY,
                               expose_tracebacks=False, ident="alluvial",
                               clear_untrusted_proxy_headers=True, asyncore_use_poll=True)
    except OSError as exc:  # taken since check_port looked
        app.extensions["alluvial"].writer.close()
        app.extensions["alluvial"].ledger.engine.dispose()
        if exc.errno == errno.EADDRINUSE:
            raise _port_in_use(host, port, "serve") from None
        raise
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

# The user each role signs in as, and the scenario actor it writes as.
DEMO_USERS = (
    ("officer", "officer", "officer-gh"),
    ("buyer", "buyer", "buyer-gh-akwatia"),
    ("exporter", "exporter", "exporter-gh-accra"),
    ("auditor", "auditor", "auditor-kp"),
    # SPEC 1: the KP authorities of Ghana, Sierra Leone and Belgium
    ("authority", "authority", "authority-gh"),
    ("authority_sl", "authority", "authority-sl"),
    ("authority_be", "authority", "authority-be"),
    ("admin", "admin", "admin"),
)
TOKENS_FILE = "demo-tokens.env"


def aligned(rows: list[tuple[str, ...]]) -> list[str]:
    """``rows`` as lines whose columns start at the same place: each cell padded to its
    column's longest (the demo's users, whose names run from 5 to 12 characters)."""
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    return [" ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(url[len(prefix):]) if url.startswith(prefix) else None


def _fresh(ctx: Context, reset: bool) -> None:
    """Make room for a fresh demo ledger, or refuse to touch an existing one."""
    db = _sqlite_path(ctx.settings.database_url)
    existing = [p for p in ([db, Path(f"{db}-wal"), Path(f"{db}-shm")] if db else [])
                + [ctx.settings.log_key_path] if p.exists()]
    if existing and not reset:
        raise click.UsageError(
            f"{existing[0]} already exists: run the demo in an empty directory, or add --reset "
            "to replace the demo ledger here.")
    for path in existing:
        path.unlink()


@click.command()
@click.option("--no-serve", is_flag=True, help="Load the demo and stop; do not start the server.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--reset", is_flag=True, help="Replace the ledger and key already in this folder.")
@click.pass_context
def demo(click_ctx: click.Context, no_serve: bool, port: int, reset: bool) -> None:
    """A fresh ledger with the West African scenario, one user per role, then the server."""
    if not no_serve:
        check_port("127.0.0.1", port, "demo")  # before anything is loaded or written
    from tqdm import tqdm

    from ledger import accounts
    from ledger.demo import load_scenario
    from ledger.recorder.events import Ledger
    from webui.login import set_password

    ctx: Context = click_ctx.obj
    _fresh(ctx, reset)
    ledger = Ledger(ctx.engine, ctx.key(create=True), late_days=ctx.settings.late_days)
    ctx.__dict__["ledger"] = ledger
    ledger.initialise()
    with tqdm(unit="line", file=sys.stderr, disable=None, leave=False) as bar:
        report = load_scenario(ledger, progress=bar.update)
    done, archive = report.ingested, report.archive
    click.echo(f"Scenario: {done.written} events of 2004-2016 imported as an archive (entry 2, "
               f"archive.imported, SHA-256 {archive.file_sha256[:16]}..., {archive.lines} lines; "
               f"SPEC 6: they raise no LATE_ENTRY), {done.flags} flags raised (the laundering "
               f"ring's purchases are held). Log size {ledger.log.size()}.")
    rules = Counter(rule for _, rule, _ in report.refusals)
    click.echo(f"Laundering ring: {len(report.refusals)} of {report.attempts} attempts to move "
               f"its stones to an export refused ({', '.join(f'{n} {r}' for r, n in rules.items())}"
               "), for example:")
    for number, _rule, message in report.refusals[:2]:
        click.echo(f"  attempt {number}: {message}")
    click.echo("What you write now is dated today (UTC): the dealers' licences were renewed "
               f"open-ended; an event dated more than {ledger.late_days} days back is flagged "
               "LATE_ENTRY, one after today refused (DATE_ORDER).")
    accounts.create_tables(ctx.engine)
    lines, table = [], []
    for name, role, actor_id in DEMO_USERS:
        accounts.add_user(ctx.engine, name, role, actor_id)
        set_password(ctx.engine, name, f"demo-{name}")
        token = accounts.create_token(ctx.engine, name)
        table.append((name, f"password demo-{name}", f"actor {actor_id}", f"token {token}"))
        lines.append(f"export {name.upper()}_TOKEN={token}\n")
    click.echo("Users (web sign-in with password demo-<name>; API tokens are shown only now):")
    for row in aligned(table):
        click.echo(f"  {row}")
    env = Path(TOKENS_FILE)
    env.write_text("".join(lines), encoding="utf-8")
    os.chmod(env, 0o600)
    click.echo(f"The tokens are also in ./{TOKENS_FILE} (source it for the README's curl steps).")
    if no_serve:
        return
    click_ctx.invoke(serve, host="127.0.0.1", port=port, threads=16)
