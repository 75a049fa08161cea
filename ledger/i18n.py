"""Sentences the core hands up to a page, marked for translation (issue 19).

The core never imports Flask nor picks a language: it raises its refusals in English.
A sentence a page may show in French is written as a template marked with :func:`N_`
(``N_("%(parcel)s is held by %(holder)s.")``) and filled with named values, so the web
layer can look the template up in its catalogue and fill the French one with the same
values (``webui.i18n``). ``pybabel extract`` finds the marks (``babel.cfg``).
"""

from __future__ import annotations


def N_(template: str) -> str:  # gettext's name for "marked, not translated"
    """``template`` unchanged: the mark that puts it in the catalogue."""
    return template
