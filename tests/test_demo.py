"""The demo scenario (issue 6): the ring is caught, clean exports trace to licensed sites."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ledger.cli import cli
from ledger.custody.trace import trace
from ledger.db import make_engine
from ledger.projections import exports, flags, sites


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("demo")
    old = Path.cwd()
    os.chdir(folder)
    try:
        result = CliRunner(env={"ALLUVIAL_DATABASE_URL": "", "ALLUVIAL_LOG_KEY": ""}).invoke(
            cli, ["demo", "--no-serve"])
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    return folder, result.stdout


def test_demo_prints_a_token_per_role_and_refuses_every_laundering_attempt(
    demo_dir: tuple[Path, str]
) -> None:
    folder, out = demo_dir
    assert "82 of 82 attempts to move its stones to an export refused" in out
    assert "open flags F-" in out and "IN_RISK_AREA" in out
    for role in ("officer", "buyer", "exporter", "auditor", "admin"):
        assert f"export {role.upper()}_TOKEN=alv_" in (folder / "demo-tokens.env").read_text()
    assert (folder / "alluvial.db").exists()


def test_demo_refuses_to_overwrite_without_reset(demo_dir: tuple[Path, str]) -> None:
    folder, _ = demo_dir
    old = Path.cwd()
    os.chdir(folder)
    try:
        again = CliRunner(env={"ALLUVIAL_DATABASE_URL": "", "ALLUVIAL_LOG_KEY": ""}).invoke(
            cli, ["demo", "--no-serve"])
    finally:
        os.chdir(old)
    assert again.exit_code == 2 and "--reset" in again.stderr


def test_ring_purchases_are_flagged_and_held(demo_dir: tuple[Path, str]) -> None:
    folder, _ = demo_dir
    engine = make_engine(f"sqlite:///{folder / 'alluvial.db'}")
    with engine.connect() as conn:
        held = conn.execute(sa.text(
            "SELECT p.parcel_id, p.status, p.open_flags FROM parcels p "
            "WHERE p.holder = 'buyer-gh-oda' AND p.dig_lon < -2.5")).all()
        codes = {r.code for r in conn.execute(sa.select(flags.c.code))}
    engine.dispose()
    assert len(held) == 60
    assert all(r.status == "active" and r.open_flags >= 2 for r in held)
    assert {"IN_RISK_AREA", "OUTSIDE_LICENSED_ZONE"} <= codes


def test_every_clean_export_traces_back_to_licensed_gh_or_sl_sites(
    demo_dir: tuple[Path, str]
) -> None:
    folder, _ = demo_dir
    engine = make_engine(f"sqlite:///{folder / 'alluvial.db'}")
    with engine.connect() as conn:
        certs = [r[0] for r in conn.execute(sa.select(exports.c.certificate_no))]
        site_country = dict(conn.execute(sa.select(sites.c.site_id, sites.c.country)).all())
        flagged = {r[0] for r in conn.execute(sa.select(flags.c.subject_id))}
        assert len(certs) == 256
        for cert in certs:
            graph = trace(conn, cert, "backward")
            origins = graph.sites()
            assert origins, cert
            assert {site_country[s] for s in origins} <= {"GH", "SL"}
            assert not flagged & {i for _, i in graph.nodes}, cert
            licensed = {e.target[1] for e in graph.edges if e.kind == "site.registered"}
            assert licensed == set(origins)  # each site relies on a licence zone
    engine.dispose()
