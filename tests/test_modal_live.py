"""Modal for real: runs only where a Modal token is set (MODAL_TOKEN_ID), never in CI or here.

One tiny experiment (the real train.py and prepare.py, the stdlib data source, a 5-second budget)
goes through the ModalRunner to the app run ephemerally for the test (`app.run()`), on the GPU
named by AUTORESEARCH_LIVE_GPU (default T4, the cheapest: this checks the path, not the speed).
Costs a few cents. Also checks that preflight answers against the real service.
"""

import hashlib
import os
import time

import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("MODAL_TOKEN_ID"),
                                reason="no Modal token (MODAL_TOKEN_ID): the live Modal test needs one")

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_preflight_against_the_real_service():
    from bot.errors import BotError
    from bot.runners.modal import preflight, token_configured

    try:
        run, prepare = preflight(token_configured(), timeout=30)
    except BotError as error:  # reachable and authenticated, but not deployed: the error must say how
        assert "modal deploy gpu_jobs/modal_app.py" in str(error)
    else:
        assert run.object_id and prepare is not None


def test_one_tiny_experiment_on_modal(tmp_path):
    from bot.pricing import gpu_price_per_second
    from bot.runners import Experiment
    from bot.runners.modal import ModalRunner
    from gpu_jobs import modal_app

    gpu = os.environ.get("AUTORESEARCH_LIVE_GPU", "T4")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("train.py", "prepare.py"):
        (source / name).write_bytes((ROOT / name).read_bytes())
    harness = {"prepare.py": hashlib.sha256((ROOT / "prepare.py").read_bytes()).hexdigest()}
    experiment = Experiment(id=0, commit="live", source_dir=str(source), work_dir=str(tmp_path), command="python train.py",
                            metric="val_bpb", budget_seconds=5.0, timeout_seconds=600.0, seed=42, data="stdlib",
                            expected_harness=harness, log_path=str(tmp_path / "0000.log"), startup_seconds=240)
    price, _ = gpu_price_per_second(gpu)
    with modal_app.app.run():
        runner = ModalRunner(modal_app.run_experiment, gpu, price, state_path=tmp_path / "calls.json",
                             prepare_function=modal_app.prepare_data)
        meta = runner.prepare({"prepare.py": (ROOT / "prepare.py").read_bytes()}, data="stdlib")
        handle = runner.submit(experiment)
        deadline = time.monotonic() + 1500
        while (result := handle.result(timeout=10)) is None and time.monotonic() < deadline:
            pass
    assert result is not None, "no result within 25 minutes"
    assert result.status == "ok", f"{result.reason}\n{result.log_tail}"
    assert result.metric_source == "harness" and 0 < result.metric < 8
    assert result.harness_result["data_fingerprint"] == meta["fingerprint"]
    assert result.isolation == runner.isolation in ("bwrap", "container")
    assert "NVIDIA" in (result.device or "") and result.timings["billed_s"] > 0 and result.cost_usd > 0
    print(f"\nlive Modal run on {gpu}: isolation {result.isolation} ({meta['sandbox_note']}); timings {result.timings}; "
          f"${result.cost_usd:.4f}")
