"""Accounts, tokens, sign-in and sessions (SPEC 6; issue 15): tokens that expire and are
revoked, users disabled, the write path checking all of it in its transaction, sessions
the server ends, the sign-in throttle, where sign-in may lead, the cookie and header
settings, file modes, password hashes of the previous version, and a database made by
the previous version. SQLite and PostgreSQL wherever the database matters."""

from __future__ import annotations

import os
import re
import stat
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from werkzeug.security import check_password_hash, generate_password_hash

from ledger import accounts, passwords, signin
from ledger.cli import cli
from ledger.config import Settings
from ledger.db import make_engine
from ledger.errors import LedgerError
from ledger.log.keys import load_or_create
from ledger.recorder.events import Event, Ledger
from tests.conftest import Auth
from webui import login

API = "/api/v1"
SQUARE = {"type": "Polygon", "coordinates": [[[-0.9, 5.9], [-0.7, 5.9], [-0.7, 6.1],
                                              [-0.9, 6.1], [-0.9, 5.9]]]}
SECRET = "a long enough secret"


def purchase(pid: str) -> dict[str, Any]:
    return {"kind": "parcel.purchased", "payload": {
        "parcel_id": pid, "site_id": "S-AKW", "seller": "Kofi Boateng", "date": "2008-03-14",
        "carats": 10.0, "stones": 5, "price": {"amount": 420.5, "currency": "USD"}}}


@pytest.fixture
def world(ledger: Ledger, auth: Auth) -> Ledger:
    """A buyer (user buyer.buyer-a, with a token), an auditor, a licence zone and a site."""
    auth.token("buyer")
    auth.token("auditor")
    ledger.write(Event("zone.registered", "off-gh", {
        "zone_id": "Z-AKW", "zone_type": "licence", "geometry": SQUARE, "date": "2004-01-06",
        "valid_from": "2000-01-01", "valid_to": None, "licence_no": "GH-ML-AKW-1",
        "holder": "Akwatia Diggers Cooperative"}))
    ledger.write(Event("site.registered", "off-gh", {
        "site_id": "S-AKW", "name": "Akwatia pit 1", "licence_no": "GH-ML-AKW-1",
        "location": {"type": "Point", "coordinates": [-0.8, 6.04]},
        "operator": "Akwatia Diggers Cooperative", "country": "GH", "date": "2004-01-07"}))
    return ledger


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def read_and_write(client: FlaskClient, token: str, pid: str) -> tuple[int, int]:
    """The status of a read and of a write made with ``token``."""
    read = client.get(f"{API}/zones", headers=bearer(token)).status_code
    write = client.post(f"{API}/events", json=purchase(pid), headers=bearer(token)).status_code
    return read, write


def invoke(runner: CliRunner, *args: str, stdin: str | None = None) -> Any:
    return runner.invoke(cli, list(args), input=stdin)


# -- finding 1: tokens that expire and are revoked; users disabled (CLI) ------------------

def test_tokens_create_list_and_revoke(world: Ledger, runner: CliRunner,
                                       client: FlaskClient) -> None:
    made = invoke(runner, "tokens", "create", "buyer.buyer-a", "--expires-days", "30")
    assert made.exit_code == 0, made.output
    token = made.output.splitlines()[-1]
    token_id = re.search(r"New API token (\w+) for buyer.buyer-a, expires 20", made.output)
    assert token.startswith("alv_") and token_id
    assert read_and_write(client, token, "P-1") == (200, 201)

    listed = invoke(runner, "tokens", "list", "buyer.buyer-a")
    assert listed.exit_code == 0 and token not in listed.output
    header, *rows = [line.split("\t") for line in listed.output.splitlines()]
    assert header == ["id", "user", "created", "expires", "revoked"]
    mine = next(r for r in rows if r[0] == token_id.group(1))
    assert mine[1] == "buyer.buyer-a" and mine[3] > mine[2] and mine[4] == "-"

    revoked = invoke(runner, "tokens", "revoke", token_id.group(1))
    assert revoked.exit_code == 0, revoked.output
    size = world.log.size()
    assert read_and_write(client, token, "P-2") == (401, 401)
    assert world.log.size() == size
    again = invoke(runner, "tokens", "list")
    assert re.search(rf"{token_id.group(1)}\tbuyer.buyer-a\t\S+\t\S+\t20\d\d-", again.output)


def test_an_expired_token_is_refused_for_reads_and_writes(world: Ledger,
                                                          client: FlaskClient) -> None:
    token = accounts.create_token(world.engine, "buyer.buyer-a", expires_days=1)
    assert read_and_write(client, token, "P-1") == (200, 201)  # remembered by the writer
    with world.engine.begin() as conn:
        conn.execute(sa.update(accounts.Token).where(
            accounts.Token.token_hash == accounts.token_digest(token))
            .values(expires="2020-01-01T00:00:00Z"))
    size = world.log.size()
    assert read_and_write(client, token, "P-2") == (401, 401)
    assert world.log.size() == size


def test_a_disabled_users_tokens_and_sessions_end(world: Ledger, runner: CliRunner,
                                                  client: FlaskClient, auth: Auth) -> None:
    token = auth.token("buyer")
    assert read_and_write(client, token, "P-1") == (200, 201)
    accounts.set_password(world.engine, "buyer.buyer-a", SECRET)
    assert sign_in(client, "buyer.buyer-a").status_code == 302
    assert client.get("/holdings").status_code == 200
    assert invoke(runner, "users", "disable", "buyer.buyer-a").exit_code == 0
    size = world.log.size()
    assert read_and_write(client, token, "P-2") == (401, 401)
    assert world.log.size() == size
    assert sent_to_sign_in(client, "/holdings")
    assert sign_in(client, "buyer.buyer-a").status_code == 401  # nor can it sign in again
    other = auth.token("auditor")  # the other users go on
    assert client.get(f"{API}/entries", headers=bearer(other)).status_code == 200
    assert "was disabled already" in invoke(runner, "users", "disable", "buyer.buyer-a").output


def test_users_add_with_a_password_on_stdin_and_passwd(world: Ledger,
                                                       runner: CliRunner) -> None:
    added = invoke(runner, "users", "add", "kofi", "--role", "buyer", "--actor", "buyer-a",
                   "--password-stdin", stdin=SECRET + "\n")
    assert added.exit_code == 0, added.output
    assert accounts.check_password(world.engine, "kofi", SECRET) is not None
    changed = invoke(runner, "users", "passwd", "kofi", stdin="another long secret\r\n")
    assert changed.exit_code == 0, changed.output
    assert accounts.check_password(world.engine, "kofi", SECRET) is None
    assert accounts.check_password(world.engine, "kofi", "another long secret") is not None


def _users(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(accounts.User).order_by(
            accounts.User.name))]


def _tokens(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(accounts.Token).order_by(
            accounts.Token.id))]


# (id, arguments, stdin, what the message names)
CLI_REFUSALS = [
    ("token-for-nobody", ["tokens", "create", "ghost"], None, "name: there is no user 'ghost'"),
    ("expires-zero-days", ["tokens", "create", "buyer.buyer-a", "--expires-days", "0"], None,
     "--expires-days"),
    ("expires-not-a-number", ["tokens", "create", "buyer.buyer-a", "--expires-days", "x"],
     None, "--expires-days"),
    ("revoke-unknown-id", ["tokens", "revoke", "abcdef"], None,
     "TOKEN_ID: there is no token 'abcdef'"),
    ("list-of-nobody", ["tokens", "list", "ghost"], None, "no user 'ghost'"),
    ("disable-nobody", ["users", "disable", "ghost"], None, "no user 'ghost'"),
    ("passwd-nobody", ["users", "passwd", "ghost"], SECRET, "no user 'ghost'"),
    ("passwd-too-short", ["users", "passwd", "buyer.buyer-a"], "short\n",
     "password: must be 8"),
    ("passwd-two-lines", ["users", "passwd", "buyer.buyer-a"], "first line\nsecond line\n",
     "password: stdin must hold the password on one line"),
    ("add-with-short-password", ["users", "add", "ama", "--role", "buyer", "--actor",
                                 "buyer-a", "--password-stdin"], "short", "password: must be 8"),
    ("add-empty-name", ["users", "add", "", "--role", "admin"], None, "name: '' is not a user"),
    ("add-name-with-space", ["users", "add", "a b", "--role", "admin"], None,
     "name: 'a b' is not a user"),
]


@pytest.mark.parametrize(("args", "stdin", "named"), [c[1:] for c in CLI_REFUSALS],
                         ids=[c[0] for c in CLI_REFUSALS])
def test_account_commands_refuse_bad_input_and_write_nothing(
        world: Ledger, runner: CliRunner, args: list[str], stdin: str | None,
        named: str) -> None:
    before = _users(world.engine), _tokens(world.engine)
    result = invoke(runner, *args, stdin=stdin)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert (_users(world.engine), _tokens(world.engine)) == before


def test_no_token_for_a_disabled_user(world: Ledger, runner: CliRunner) -> None:
    accounts.disable_user(world.engine, "buyer.buyer-a")
    before = _tokens(world.engine)
    result = invoke(runner, "tokens", "create", "buyer.buyer-a")
    assert result.exit_code == 2 and "the user 'buyer.buyer-a' is disabled" in result.output
    assert _tokens(world.engine) == before


# -- finding 2: the write path checks the user too ---------------------------------------

def _delete_user(engine: sa.Engine, name: str) -> None:
    """Delete a user row and leave its tokens, as a hand-made DELETE in a database shell
    without foreign keys would."""
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        on_sqlite = conn.dialect.name == "sqlite"
        if on_sqlite:  # outside a transaction, where SQLite honours it
            driver.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                if not on_sqlite:
                    conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                conn.execute(sa.delete(accounts.User).where(accounts.User.name == name))
        finally:
            if on_sqlite:
                driver.execute("PRAGMA foreign_keys=ON")


def test_a_deleted_users_token_neither_reads_nor_writes(world: Ledger, client: FlaskClient,
                                                       auth: Auth) -> None:
    token = auth.token("buyer")
    assert read_and_write(client, token, "P-1") == (200, 201)
    _delete_user(world.engine, "buyer.buyer-a")
    size = world.log.size()
    assert read_and_write(client, token, "P-2") == (401, 401)
    assert world.log.size() == size


# -- finding 3: signing out ends the session on the server --------------------------------

def csrf(client: FlaskClient, path: str = "/login") -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found
    return found.group(1)


def sign_in(client: FlaskClient, name: str, password: str = SECRET, next_: str = "",
            address: str = "127.0.0.1") -> Any:
    query = f"?next={next_}" if next_ else ""
    return client.post(f"/login{query}", data={"csrf_token": csrf(client), "name": name,
                                                "password": password},
                       environ_base={"REMOTE_ADDR": address})


def sent_to_sign_in(client: FlaskClient, path: str) -> bool:
    answer = client.get(path)
    return answer.status_code == 302 and answer.headers["Location"].startswith("/login")


def session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    # What a browser holds after signing in: a session cookie scripts cannot read.
    assert cookie is not None and cookie.value and cookie.http_only, cookie
    return cookie.value


def test_a_copied_cookie_opens_nothing_after_sign_out(world: Ledger, app: Flask) -> None:
    accounts.set_password(world.engine, "auditor.aud-1", SECRET)
    browser, thief = app.test_client(), app.test_client()
    assert sign_in(browser, "auditor.aud-1").status_code == 302
    thief.set_cookie("session", session_cookie(browser))
    assert thief.get("/audit").status_code == 200
    out = browser.post("/logout", data={"csrf_token": csrf(browser, "/")})
    assert out.status_code == 302
    assert sent_to_sign_in(thief, "/audit")
    assert sent_to_sign_in(browser, "/audit")


def test_a_new_password_ends_every_session_of_the_user(world: Ledger, app: Flask,
                                                       runner: CliRunner) -> None:
    accounts.set_password(world.engine, "auditor.aud-1", SECRET)
    first, second = app.test_client(), app.test_client()
    for browser in (first, second):
        assert sign_in(browser, "auditor.aud-1").status_code == 302
    assert invoke(runner, "users", "passwd", "auditor.aud-1",
                  stdin="a brand new secret").exit_code == 0
    for browser in (first, second):
        assert sent_to_sign_in(browser, "/audit")


def test_a_session_ends_after_its_hours(world: Ledger, app: Flask) -> None:
    accounts.set_password(world.engine, "auditor.aud-1", SECRET)
    browser = app.test_client()
    assert sign_in(browser, "auditor.aud-1").status_code == 302
    with world.engine.begin() as conn:
        conn.execute(sa.update(accounts.WebSession).values(created="2020-01-01T00:00:00Z"))
    assert sent_to_sign_in(browser, "/audit")


# -- finding 4: the sign-in throttle ------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    found = Clock()
    monkeypatch.setattr(signin, "clock", found)
    return found


def test_sign_in_locks_an_account_with_a_growing_delay(world: Ledger, client: FlaskClient,
                                                       clock: Clock) -> None:
    accounts.set_password(world.engine, "auditor.aud-1", SECRET)
    for _ in range(signin.LIMITS["account"]):
        assert sign_in(client, "auditor.aud-1", "wrong guess").status_code == 401
    locked = sign_in(client, "auditor.aud-1")  # the right password, during the lock
    assert locked.status_code == 429 and locked.headers["Retry-After"] == "30"
    assert "try again in 30 seconds" in locked.text.lower()
    assert client.get("/audit").status_code == 302  # not signed in
    clock.now += 31
    assert sign_in(client, "auditor.aud-1", "wrong again").status_code == 401
    assert sign_in(client, "auditor.aud-1").headers["Retry-After"] == "60"  # doubled
    clock.now += 61
    assert sign_in(client, "auditor.aud-1").status_code == 302  # and the count starts again
    for _ in range(signin.LIMITS["account"] - 1):
        assert sign_in(client, "auditor.aud-1", "wrong guess").status_code == 401
    assert sign_in(client, "auditor.aud-1").status_code == 302


def test_sign_in_locks_an_address_trying_many_accounts(world: Ledger, client: FlaskClient,
                                                       clock: Clock) -> None:
    accounts.set_password(world.engine, "auditor.aud-1", SECRET)
    for n in range(signin.LIMITS["address"]):
        assert sign_in(client, f"guess{n}", "wrong", address="203.0.113.9").status_code == 401
    assert sign_in(client, "auditor.aud-1", address="203.0.113.9").status_code == 429
    assert sign_in(client, "auditor.aud-1", address="198.51.100.1").status_code == 302


def test_the_throttle_holds_across_processes(world: Ledger, settings: Settings,
                                             clock: Clock) -> None:
    """Two apps with engines of their own, as two `serve` processes have: failures counted
    by one lock the account in the other."""
    from webui import create_app

    accounts.set_password(world.engine, "auditor.aud-1", SECRET)
    other = create_app({"TESTING": True, "DATABASE_URL": settings.database_url,
                        "LOG_KEY": str(settings.log_key_path)})
    first = other.test_client()
    for _ in range(signin.LIMITS["account"]):
        assert sign_in(first, "auditor.aud-1", "wrong guess").status_code == 401
    again = create_app({"TESTING": True, "DATABASE_URL": settings.database_url,
                        "LOG_KEY": str(settings.log_key_path)})
    assert sign_in(again.test_client(), "auditor.aud-1").status_code == 429
    for app in (other, again):
        app.extensions["alluvial"].ledger.engine.dispose()


@pytest.mark.parametrize(("failures", "seconds"), [(1, 0), (4, 0), (5, 30), (6, 60), (7, 120),
                                                   (9, 480), (10, 900), (500, 900)])
def test_lock_seconds(failures: int, seconds: float) -> None:
    assert signin.lock_seconds(failures, 5) == seconds


# -- finding 5: where signing in may lead -------------------------------------------------

# next= as it arrives in the query string; "/" is the dashboard.
NEXT = [
    ("tab-then-host", "/%09/evil.example/pwn", "/"),
    ("newline", "/%0A/x", "/"),
    ("header-injection", "/%0D%0ALocation:%20//evil.example", "/"),
    ("protocol-relative", "//evil.example/x", "/"),
    ("backslash", "/%5Cevil.example", "/"),
    ("backslash-later", "/x/..%5C%5Cevil.example", "/"),
    ("absolute", "https://evil.example/", "/"),
    ("javascript", "javascript:alert(1)", "/"),
    ("leading-space", "%20/map", "/"),
    ("nul", "/%00x", "/"),
    ("no-slash", "map", "/"),
    ("own-page", "/map", "/map"),
    ("own-page-with-query", "/parcels/P-1%3Fx%3D1", "/parcels/P-1?x=1"),
    ("own-page-non-ascii", "/parcels/C%C3%B4te", "/parcels/C%C3%B4te"),
]


@pytest.mark.parametrize(("target", "location"), [n[1:] for n in NEXT], ids=[n[0] for n in NEXT])
def test_sign_in_leads_only_to_this_site(world: Ledger, client: FlaskClient, target: str,
                                         location: str) -> None:
    accounts.set_password(world.engine, "auditor.aud-1", SECRET)
    answer = sign_in(client, "auditor.aud-1", next_=target)
    assert answer.status_code == 302
    assert answer.headers["Location"] == location


@examples(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("/\\\t\n\r :.?#@%ea\x00\x0b\u2028\u3000"),
               max_size=12) | st.text(max_size=12))
def test_no_accepted_target_leads_off_the_site(target: str) -> None:
    """Whatever is accepted stays on this site as a browser reads it: tabs and newlines
    dropped, backslashes read as slashes, leading and trailing spaces trimmed."""
    found = login.local_path(target)
    if found is not None:
        read = re.sub(r"[\t\n\r]", "", found).replace("\\", "/").strip()
        parts = urlsplit(read)
        assert read.startswith("/") and not parts.scheme and not parts.netloc


# -- finding 6: cookies, headers, file modes ----------------------------------------------

@pytest.mark.parametrize("path", ["/checkpoint", "/zones", "/nowhere", "/openapi.json"])
def test_every_api_answer_says_nosniff(world: Ledger, client: FlaskClient, path: str) -> None:
    assert client.get(API + path).headers["X-Content-Type-Options"] == "nosniff"


def test_a_write_says_nosniff(world: Ledger, client: FlaskClient, auth: Auth) -> None:
    answer = client.post(f"{API}/events", json=purchase("P-1"), headers=bearer(auth.token(
        "buyer")))
    assert answer.status_code == 201 and answer.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(("value", "secure"), [("1", True), ("true", True), ("0", False),
                                               (None, False)])
def test_secure_cookies_setting(world: Ledger, monkeypatch: pytest.MonkeyPatch,
                                value: str | None, secure: bool) -> None:
    from webui import create_app

    if value is None:
        monkeypatch.delenv("ALLUVIAL_SECURE_COOKIES", raising=False)
    else:
        monkeypatch.setenv("ALLUVIAL_SECURE_COOKIES", value)
    accounts.set_password(world.engine, "auditor.aud-1", SECRET)
    client = create_app({"TESTING": True, "LEDGER": world}).test_client()
    cookie = sign_in(client, "auditor.aud-1").headers["Set-Cookie"]
    assert ("; Secure" in cookie) is secure


def test_a_bad_secure_cookies_value_is_refused(world: Ledger,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from webui import create_app

    monkeypatch.setenv("ALLUVIAL_SECURE_COOKIES", "maybe")
    with pytest.raises(LedgerError, match="ALLUVIAL_SECURE_COOKIES: 'maybe'"):
        create_app({"TESTING": True, "LEDGER": world})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_file_and_the_log_key_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
        book = Ledger(engine, load_or_create(tmp_path / "keys" / "log.key", "alluvial.local"))
        book.initialise()
        with engine.connect() as conn:  # the WAL files exist while a connection is open
            conn.exec_driver_sql("SELECT 1")
            modes = {p.name: _mode(p) for p in tmp_path.iterdir() if p.is_file()}
        engine.dispose()
    finally:
        os.umask(old)
    assert modes == {"new.db": 0o600, "new.db-wal": 0o600, "new.db-shm": 0o600}
    assert _mode(tmp_path / "keys" / "log.key") == 0o600


# -- passwords of the previous version; a database made by it ----------------------------

def test_a_hash_stored_by_the_previous_version_still_verifies() -> None:
    old = generate_password_hash("demo-admin", method="scrypt")  # what it stored
    assert passwords.verify_password(old, "demo-admin")
    assert not passwords.verify_password(old, "demo-admin ")
    new = passwords.hash_password("demo-admin")
    assert new.startswith("scrypt:32768:8:1$") and check_password_hash(new, "demo-admin")


@pytest.mark.parametrize("stored", [
    "", "plain", "scrypt", "scrypt:32768:8:1$salt", "pbkdf2:sha256:1000$salt$00",
    "scrypt:x:8:1$salt$00", "scrypt:3:8:1$salt$00", "scrypt:1073741824:8:1$salt$00",
    "scrypt:32768:8$salt$00"],
    ids=["empty", "plain", "no-salt", "no-digest", "other-method", "not-a-number",
         "n-not-a-power-of-two", "n-too-large", "two-parameters"])
def test_a_hash_it_cannot_read_signs_nobody_in(stored: str) -> None:
    assert passwords.verify_password(stored, "anything") is False


# The account tables as the previous version made them.
OLD_TABLES = [
    "CREATE TABLE users (name VARCHAR(64) PRIMARY KEY, role VARCHAR(16) NOT NULL, "
    "actor_id VARCHAR(64) NOT NULL, password_hash VARCHAR(256), created VARCHAR(40) NOT NULL)",
    'CREATE TABLE api_tokens (id VARCHAR(16) PRIMARY KEY, "user" VARCHAR(64) NOT NULL '
    "REFERENCES users (name), token_hash VARCHAR(64) NOT NULL UNIQUE, "
    "created VARCHAR(40) NOT NULL)",
]


def test_a_database_made_by_the_previous_version_keeps_working(ledger: Ledger) -> None:
    old_hash = generate_password_hash(SECRET, method="scrypt")
    token = "alv_made-by-the-previous-version"
    with ledger.engine.begin() as conn:
        for ddl in OLD_TABLES:
            conn.exec_driver_sql(ddl)
        conn.execute(sa.text("INSERT INTO users VALUES ('root', 'admin', 'admin', :h, "
                             "'2024-01-01T00:00:00Z')"), {"h": old_hash})
        conn.execute(sa.text("INSERT INTO api_tokens VALUES ('0123456789ab', 'root', :d, "
                             "'2024-01-01T00:00:00Z')"), {"d": accounts.token_digest(token)})
    from webui import create_app

    client = create_app({"TESTING": True, "LEDGER": ledger}).test_client()  # upgrades
    accounts.create_tables(ledger.engine)  # twice is the same as once
    assert client.get(f"{API}/zones", headers=bearer(token)).status_code == 200
    assert accounts.check_password(ledger.engine, "root", SECRET) is not None
    assert [t.id for t in accounts.list_tokens(ledger.engine, "root")] == ["0123456789ab"]
    accounts.revoke_token(ledger.engine, "0123456789ab")
    assert client.get(f"{API}/zones", headers=bearer(token)).status_code == 401


# -- the admin's page ------------------------------------------------------------------------

def test_the_admin_revokes_tokens_and_disables_users_on_its_page(world: Ledger, app: Flask,
                                                                 auth: Auth) -> None:
    accounts.add_user(world.engine, "root", "admin", password=SECRET)
    admin = app.test_client()
    assert sign_in(admin, "root").status_code == 302
    buyer, auditor = auth.token("buyer"), auth.token("auditor")
    (info,) = accounts.list_tokens(world.engine, "buyer.buyer-a")
    page = admin.get("/admin/users").text
    assert info.id in page and buyer not in page
    token = csrf(admin, "/admin/users")
    assert admin.post(f"/admin/tokens/{info.id}/revoke",
                      data={"csrf_token": token}).status_code == 302
    assert admin.post("/admin/users/auditor.aud-1/disable",
                      data={"csrf_token": token}).status_code == 302
    client = app.test_client()
    assert client.get(f"{API}/zones", headers=bearer(buyer)).status_code == 401
    assert client.get(f"{API}/zones", headers=bearer(auditor)).status_code == 401
    assert "disabled 20" in admin.get("/admin/users").text
    missing = admin.post("/admin/tokens/nope/revoke", data={"csrf_token": token})
    assert missing.status_code == 404 and "no token 'nope'" in unescape(missing.text)
