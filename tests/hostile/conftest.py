"""Fixtures of the hostile suite: one session cache for the data splits (warmed by the honest run,
which every `honest` case is compared with) and a fresh world (new fake secrets) per case."""

import pytest

from .cases import HONEST
from .harness import World, run_case


@pytest.fixture(scope="session")
def hostile_session(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    cache = base / "cache"
    world = World(base / "honest", cache)
    try:
        outcome = run_case(HONEST, world)  # also prepares the splits into the shared cache
    finally:
        world.close()
    result = outcome.result
    assert result["status"] == "ok" and result["isolation"] == "bwrap", (result["reason"], result["log_tail"][-2000:])
    return {"cache": cache, "honest": result["metric"], "honest_result": result}


@pytest.fixture
def world(tmp_path, hostile_session):
    world = World(tmp_path / "world", hostile_session["cache"])
    yield world
    world.close()
