"""Keep the French catalogue of the pages up to date (issue 19).

    python scripts/translations.py                 # extract, merge into fr, compile
    python scripts/translations.py --fill F.json   # also take translations {msgid: msgstr}

1. ``pybabel extract`` with ``babel.cfg``: every string the templates, ``webui`` and the
   core (``N_``) mark, into a template catalogue in a temporary folder.
2. ``pybabel update``: the French catalogue ``webui/translations/fr/LC_MESSAGES/
   messages.po`` gains the new strings (empty, to translate) and loses the ones no longer
   used; no fuzzy matching, so a string is never given a neighbour's French silently.
3. ``--fill``: a JSON object of English to French (a plural is ``[one, other]``) fills the
   catalogue's entries of those strings.
4. ``pybabel compile``: the ``.mo`` the app reads, beside the ``.po``.

tests/test_i18n.py fails while a string has no French or the ``.mo`` is older than the
``.po``. Each step is Babel's own command (``babel.messages.frontend``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # babel.cfg names an extractor of the core (schemas' words)
TRANSLATIONS = ROOT / "webui" / "translations"
KEYWORDS = ["-k", "N_", "-k", "lazy_gettext", "-k", "_l", "-k", "lazy_ngettext:1,2"]


def pybabel(*args: str) -> None:
    here = Path.cwd()
    try:  # file names in the catalogue relative to the repository
        os.chdir(ROOT)
        CommandLineInterface().run(["pybabel", "-q", *args])
    finally:
        os.chdir(here)


def extract(pot: Path) -> None:
    pybabel("extract", "-F", str(ROOT / "babel.cfg"), *KEYWORDS, "--no-wrap",
            "--sort-by-file", "--add-location=file", "--project=Alluvial Ledger",
            "--copyright-holder=Alluvial Ledger", "-o", str(pot), ".")


def fill(po: Path, translations: dict[str, str | list[str]]) -> int:
    with po.open("rb") as f:
        catalog = read_po(f)
    filled = 0
    for message in catalog:
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        if not key or key not in translations:
            continue
        french = translations[key]
        if isinstance(message.id, tuple):  # [one, other]; CLDR's French also has "millions"
            one, other = french[0], french[-1]
            message.string = (one, *[other] * (catalog.num_plurals - 1))
        else:
            message.string = french
        message.flags.discard("fuzzy")
        filled += 1
    with po.open("wb") as f:
        write_po(f, catalog, width=0, sort_by_file=True, include_previous=False)
    return filled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fill", type=Path, action="append", default=[],
                        help="a JSON object {English: French} to put in the catalogue")
    args = parser.parse_args(argv)
    po = TRANSLATIONS / "fr" / "LC_MESSAGES" / "messages.po"
    with tempfile.TemporaryDirectory() as tmp:
        pot = Path(tmp) / "messages.pot"
        extract(pot)
        if po.exists():
            pybabel("update", "-i", str(pot), "-d", str(TRANSLATIONS), "-l", "fr",
                    "--no-fuzzy-matching", "--ignore-obsolete", "--no-wrap")
        else:
            pybabel("init", "-i", str(pot), "-d", str(TRANSLATIONS), "-l", "fr", "--no-wrap")
    for path in args.fill:
        print(f"{path}: {fill(po, json.loads(path.read_text(encoding='utf-8')))} filled")
    pybabel("compile", "-d", str(TRANSLATIONS), "-l", "fr")
    with po.open("rb") as f:
        catalog = read_po(f)
    missing = [m.id for m in catalog if m.id and (not m.string or "fuzzy" in m.flags
                                                  or not all(m.string))]
    print(f"{po.relative_to(ROOT)}: {len(catalog)} strings, {len(missing)} without French")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
