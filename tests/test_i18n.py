"""Issue 19: the pages in English and French.

- The catalogue: every string the templates, ``webui`` and the core (``N_``) mark has a
  French translation (not fuzzy, same placeholders), and the compiled ``.mo`` the app reads
  is that of the ``.po`` in the repository.
- No template holds text a user reads that is not marked: text nodes, the attributes a
  screen reader or a form shows, and the Jinja string literals that are shown.
- The language: Accept-Language is honoured, the header's switch overrides it and sends the
  user back to the page, never to another site.
- Every page each demo role reaches, rendered in French, shows no English string of the
  catalogue, and no heading, label, button or table header left as in English.
"""

from __future__ import annotations

import ast
import io
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import Environment

from tests.conftest import built_demo, copy_demo  # noqa: F401 - built_demo is a fixture

ROOT = Path(__file__).resolve().parents[1]
PO = ROOT / "webui" / "translations" / "fr" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
TEMPLATES = ROOT / "webui" / "templates"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None,
            "lazy_ngettext": (1, 2), "N_": None, "_l": None}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdfr]|%[sdfr]")
# Words that read the same in French: units, formats, codes and the product's name.
SAME = {"Alluvial Ledger", "KP", "USD", "ct", "CSV", "GeoJSON", "JSON", "SHA-256", "Atom",
        "ID", "OK", "N", "S", "E", "W", "km", "PNG", "SVG", "RSS", "Merkle"}


def catalogue() -> Any:
    with PO.open("rb") as f:
        return read_po(f)


def extracted() -> dict[str, str]:
    """What the sources mark today, as babel.cfg says: msgid -> where."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS):
        msgid = message[0] if isinstance(message, tuple) else message
        found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def test_every_marked_string_has_french() -> None:
    french = {m.id[0] if isinstance(m.id, tuple) else m.id: m for m in catalogue() if m.id}
    missing, untranslated, mismatched = [], [], []
    for msgid, where in extracted().items():
        message = french.get(msgid)
        if message is None:
            missing.append(f"{where}: {msgid!r}")
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if "fuzzy" in message.flags or not all(strings):
            untranslated.append(f"{where}: {msgid!r}")
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for string in strings:
            if set(PLACEHOLDER.findall(string)) - wanted:
                mismatched.append(f"{where}: {msgid!r} -> {string!r}")
    assert not missing, ("not in the catalogue (run python scripts/translations.py):\n"
                         + "\n".join(missing[:40]))
    assert not untranslated, "no French yet:\n" + "\n".join(untranslated[:40])
    assert not mismatched, "French names a value the English does not:\n" + "\n".join(
        mismatched[:40])


def test_the_compiled_catalogue_is_the_one_of_the_po() -> None:
    compiled = io.BytesIO()
    write_mo(compiled, catalogue())
    assert MO.read_bytes() == compiled.getvalue(), (
        "webui/translations/fr/LC_MESSAGES/messages.mo is stale: run "
        "python scripts/translations.py")


# -- no text left unmarked in a template ------------------------------------------------------

SHOWN_ATTRIBUTES = {"title", "alt", "placeholder", "aria-label", "aria-description"}
LETTERS = re.compile(r"[A-Za-zÀ-ÿ]{2,}")
GAP = " \x00 "  # where an expression or a tag of the template was (spaced: inside a tag
# it reads as an attribute, `<option{% if x %} selected{% endif %}>`)


class _Text(HTMLParser):
    """The text a user reads in a template's literal parts, with where it was."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        values = dict(attrs)
        shown = set(SHOWN_ATTRIBUTES)
        if tag == "input" and values.get("type") in ("submit", "button"):
            shown.add("value")
        for name, value in attrs:
            if name in shown and value:
                self.found.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.found.append(data)


def _unmarked(source: str, env: Environment) -> Iterator[tuple[int, str]]:
    """(line, text) of each piece of literal text or shown string literal not marked."""
    tokens = [t for t in env.lex(source) if t[1] != "whitespace"]
    literal: list[str] = []
    lines: list[int] = []
    in_trans = False
    for i, (lineno, kind, value) in enumerate(tokens):
        if kind == "name" and value == "trans" and tokens[i - 1][1] == "block_begin":
            in_trans = True
        elif kind == "name" and value == "endtrans":
            in_trans = False
        elif kind == "data" and not in_trans:
            literal.append(value)
            lines.append(lineno)
        elif kind in ("variable_begin", "block_begin", "comment_begin"):
            literal.append(GAP)
            lines.append(lineno)
        elif kind == "string" and _shown_literal(tokens, i):
            yield lineno, ast.literal_eval(value)
    parser = _Text()
    parser.feed("".join(literal))
    for text in parser.found:
        for piece in text.split(GAP.strip()):
            words = " ".join(piece.split())
            if LETTERS.search(words) and words not in SAME and not _code(words):
                yield _line_of(words, source), words


def _shown_literal(tokens: list[tuple[int, str, str]], i: int) -> bool:
    """A string literal that reads as words ("Flags", "Not judged") and is not the
    argument of a gettext call: shown text that is not marked."""
    value = ast.literal_eval(tokens[i][2])
    words = re.search(r"\b[A-Z][a-z]{2,}|\b[a-z]{3,} [a-z]{3,}", value)
    dotted = "." in value and " " not in value  # an endpoint or a file name
    if not words or dotted:
        return False
    j = i - 1
    while j > 0 and tokens[j][1] in ("operator", "string", "integer", "name"):
        if tokens[j][1] == "operator" and tokens[j][2] == "(":
            return tokens[j - 1][2] not in KEYWORDS
        if tokens[j][1] == "operator" and tokens[j][2] in (")", "{", "}", "[", "]"):
            break
        if tokens[j][1] == "name" and tokens[j][2] in ("set", "default", "if", "else"):
            return True
        j -= 1
    return True


def _code(words: str) -> bool:
    """Not words: punctuation, ids and codes in capitals, units, HTML entities left over."""
    return all(w in SAME or re.fullmatch(r"[^a-zà-ÿ]*", w) for w in words.split())


def _line_of(words: str, source: str) -> int:
    first = words.split()[0]
    for number, line in enumerate(source.splitlines(), 1):
        if first in line:
            return number
    return 0


def test_no_template_holds_text_that_is_not_marked() -> None:
    env = Environment(extensions=["jinja2.ext.i18n"])
    found = [f"{path.name}:{line}: {text!r}" for path in sorted(TEMPLATES.glob("*.html"))
             for line, text in _unmarked(path.read_text(encoding="utf-8"), env)]
    assert not found, ("text a user reads that has no French (mark it {{ _(\"...\") }}):\n"
                       + "\n".join(found[:60]))


def test_the_unmarked_text_check_finds_what_it_should() -> None:
    env = Environment(extensions=["jinja2.ext.i18n"])
    page = ('<h1>{{ _("Parcels") }}</h1><p>Held by {{ x }}</p>'
            '<input placeholder="Parcel id" aria-label="{{ _(\'Parcel\') }}">'
            '{% set title = "Flags" %}{{ _("Open flags") }}<td>GH-P001 · 10 ct</td>'
            '{% trans %}Fine words{% endtrans %}{{ x|default("Not judged") }}')
    said = {text for _line, text in _unmarked(page, env)}
    assert said == {"Held by", "Parcel id", "Flags", "Not judged"}


# -- the language of a page -------------------------------------------------------------------

def test_accept_language_is_honoured_and_the_switch_overrides_it(client: Any) -> None:
    english = client.get("/login")
    assert '<html lang="en">' in english.text
    french = client.get("/login", headers={"Accept-Language": "fr-CI,fr;q=0.9,en;q=0.5"})
    assert '<html lang="fr">' in french.text
    assert "Sign in" not in french.text
    switched = client.get("/language/en?next=/login")
    assert switched.status_code == 303 and switched.headers["Location"].endswith("/login")
    again = client.get("/login", headers={"Accept-Language": "fr"})
    assert '<html lang="en">' in again.text  # the user's choice beats the browser's
    client.get("/language/fr?next=/login")
    assert '<html lang="fr">' in client.get("/login").text
    links = re.findall(r'<a href="(/language/\w+\?next=[^"]+)" lang="(\w+)"', again.text)
    assert {lang for _href, lang in links} == {"en", "fr"}


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/x",
                                    "/\\evil.example", "javascript:alert(1)", "x", ""])
def test_the_switch_never_sends_a_user_to_another_site(client: Any, target: str) -> None:
    answer = client.get("/language/fr", query_string={"next": target})
    assert answer.status_code == 303
    assert urlsplit(answer.headers["Location"]).netloc in ("", "localhost")
    assert urlsplit(answer.headers["Location"]).path == "/"


def test_an_unknown_language_changes_nothing(client: Any) -> None:
    answer = client.get("/language/xx?next=/login")
    assert answer.status_code == 303 and "lang=" not in answer.headers.get("Set-Cookie", "")


# -- every page of the demo, in French --------------------------------------------------------

DEMO_USERS = ("officer", "buyer", "exporter", "auditor", "admin", "authority")
STRUCTURE = {"h1", "h2", "h3", "th", "label", "button", "legend", "summary", "caption",
             "dt", "option"}


class _Shown(HTMLParser):
    """Text nodes of a page (with the element they are in) and its shown attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[tuple[str, str]] = []
        self.links: list[str] = []
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("input", "br", "img", "meta", "link", "hr", "source", "col"):
            self._open.append(tag)
        for name, value in attrs:
            if name in SHOWN_ATTRIBUTES and value:
                self.texts.append((f"@{name}", value))
            if name == "href" and value and tag == "a":
                self.links.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            while self._open and self._open.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        words = " ".join(data.split())
        if words and not (set(self._open) & {"script", "style", "code", "kbd", "samp", "pre"}):
            self.texts.append((self._open[-1] if self._open else "", words))


def _shown(html: str) -> _Shown:
    parser = _Shown()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def demo_app(built_demo: tuple[Path, str],  # noqa: F811
             tmp_path_factory: pytest.TempPathFactory) -> Any:
    from ledger.db import make_engine
    from webui import create_app
    from webui.login import set_password

    folder = copy_demo(built_demo, tmp_path_factory, "i18n-demo")
    engine = make_engine(f"sqlite:///{folder / 'alluvial.db'}")
    for name in DEMO_USERS:
        set_password(engine, name, f"demo-{name}")
    engine.dispose()
    return create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{folder / 'alluvial.db'}",
                       "LOG_KEY": str(folder / "alluvial-log.key")})


def _signed_in(app: Any, role: str) -> Any:
    client = app.test_client()
    client.set_cookie("lang", "fr")
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    answer = client.post("/login", data={"name": role, "password": f"demo-{role}",
                                         "csrf_token": token.group(1)})
    assert answer.status_code in (302, 303), answer.text
    return client


def _crawl(client: Any, limit: int = 60) -> Iterator[tuple[str, str]]:
    """(path, HTML) of the pages reachable from the dashboard, one per kind of page."""
    seen_kinds: set[str] = set()
    todo = ["/", "/map?as_of=2010-06-01", "/flags?status=resolved", "/search?q=GH"]
    visited: set[str] = set()
    while todo and len(visited) < limit:
        path = todo.pop(0)
        parts = urlsplit(path)
        kind = re.sub(r"/[A-Z0-9][A-Za-z0-9._-]*\d[A-Za-z0-9._-]*", "/*", parts.path)
        kind += "?" + "&".join(sorted(k.split("=")[0] for k in parts.query.split("&") if k))
        if path in visited or kind in seen_kinds or parts.netloc:
            continue
        if re.search(r"\.(csv|geojson|json|png|svg|zip|xml)$|/logout|/language/|/api/",
                     parts.path):
            continue
        visited.add(path)
        seen_kinds.add(kind)
        answer = client.get(path)
        if answer.status_code != 200 or answer.mimetype != "text/html":
            continue
        yield path, answer.text
        todo.extend(link for link in _shown(answer.text).links if link.startswith("/"))


def _english() -> set[str]:
    """The catalogue's English sentences that French does not write the same way."""
    english: set[str] = set()
    for message in catalogue():
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for msgid in ids:
            words = " ".join(msgid.split())
            if (msgid and msgid not in strings and not PLACEHOLDER.search(msgid)
                    and not re.fullmatch(r"[a-z_]+", words)):  # "admin": also a user's name
                english.add(words)
    return english


@pytest.mark.parametrize("role", DEMO_USERS)
def test_every_page_in_french_has_no_english_left(demo_app: Any, role: str) -> None:
    client = _signed_in(demo_app, role)
    english = _english()
    left: dict[tuple[str, str], str] = {}  # (element, text): the first page it is on
    pages = 0
    for path, html in _crawl(client):
        pages += 1
        assert '<html lang="fr">' in html, path
        for where, text in _shown(html).texts:
            if text in english:
                left.setdefault((where, text), f"{path} (in the catalogue)")
            elif (where in STRUCTURE and re.search(r"\b[a-z]{3,}\b", text)
                  and _english_words(text)):
                left.setdefault((where, text), f"{path} (not marked?)")
    assert pages >= 5, f"{role} reached only {pages} pages"
    assert not left, f"{role}: English left on French pages:\n" + "\n".join(
        f"<{where}> {text!r} on {first}" for (where, text), first in list(left.items())[:80])


# Common English words that are not French words as well (so not "zone", "site", "date",
# "licence", "page", "a", "on", "as", "sort", "export" is kept: French says exportation).
ENGLISH_WORDS = {"the", "and", "of", "to", "by", "for", "with", "from", "is", "are",
                 "not", "no", "this", "that", "which", "what", "who", "when", "has", "have",
                 "all", "each", "every", "new", "open", "resolved", "held", "sold", "bought",
                 "holder", "parcel", "parcels", "flag", "flags", "actor", "actors", "entry",
                 "entries", "next", "previous", "sign", "in", "out", "name", "kind",
                 "status", "price", "stones", "export", "exports", "search", "filter",
                 "show", "view", "download", "map", "certificate", "certificates", "user",
                 "users", "role", "password", "token", "verify", "or", "an", "any"}


def _english_words(text: str) -> bool:
    """Two or more words of common English (French shares few of these)."""
    words = re.findall(r"[a-z]+", text.lower())
    return sum(w in ENGLISH_WORDS for w in words) >= 2 or (
        len(words) == 1 and words[0] in ENGLISH_WORDS)
