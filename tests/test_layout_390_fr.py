"""Issue 19, acceptance 1, in French: the crawl of tests/test_layout_390.py in a French
browser (Accept-Language fr-FR), signed in on the French page. French runs longer than
English, so it is the stricter test of the 390 px width; the file of its own lets
pytest-xdist run it beside the English crawl (each module serves its own demo).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_browser import browser, demo  # noqa: F401 - fixtures
from tests.test_layout_390 import CRAWLERS, axe, crawl, sign_in_in_french, tab  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("role", CRAWLERS)
@pytest.mark.parametrize("tab", ["fr-FR"], indirect=True)
def test_every_page_in_french_fits_390_px_and_has_no_serious_axe_violation(
        tab: Any, axe: Any, role: str) -> None:  # noqa: F811
    sign_in_in_french(tab, role)
    crawl(tab, axe, role)
