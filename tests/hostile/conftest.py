"""Fixtures of the hostile suite: one session cache for the data splits (warmed by the honest run,
which every `honest` case is compared with) and a fresh world (new fake secrets) per case."""

import pytest

from .cases import HONEST
from .harness import ROOT, World, run_case


@pytest.fixture(scope="session")
def hostile_session(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    cache = base / "cache"
    prepare_bytes = (ROOT / "prepare.py").read_bytes()
    world = World(base / "honest", cache, prepare_bytes)
    try:
        outcome = run_case(HONEST, world)  # also prepares the splits into the shared cache
    finally:
        world.close()
    result = outcome.result
    assert result["status"] == "ok" and result["isolation"] == "bwrap", (result["reason"], result["log_tail"][-2000:])
    return {"cache": cache, "honest": result["metric"], "honest_result": result, "prepare_bytes": prepare_bytes}


@pytest.fixture
def world(tmp_path, hostile_session):
    world = World(tmp_path / "world", hostile_session["cache"], hostile_session["prepare_bytes"])
    yield world
    world.close()
