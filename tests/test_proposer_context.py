"""bot.proposers.context: what the model is shown. Pure."""

import pytest

from bot.proposers.context import DISCARD_STREAK, history_text, request_text, system_blocks


def row(i, status, description, delta=None, sigma=None, **extra):
    evidence = {"delta": delta, "delta_sigma": sigma} if delta is not None else {}
    return {"id": i, "kind": "experiment", "status": status, "description": description, "metric": 3.0 + (delta or 0),
            "evidence": evidence, "reason": f"reason {i}", **extra}


BASELINE = {"id": 0, "kind": "baseline", "status": "keep", "description": "baseline", "metric": 3.5}


def test_the_prefix_is_cached_and_never_holds_the_harness():
    blocks = system_blocks("Aim low.", {"train.py": "LR = 1\n"}, ("train.py",))
    assert [b.get("cache_control") for b in blocks] == [None, None, None, {"type": "ephemeral"}]
    text = "\n".join(b["text"] for b in blocks)
    assert "Aim low." in text and '<file path="train.py">\nLR = 1\n' in text and "propose_change" in text
    assert "evaluate_bpb" in text and "AUTORESEARCH_" not in text and "result" not in blocks[2]["text"].lower()


@pytest.mark.parametrize("records, present, absent", [
    ([BASELINE], ["Current best: 0000 at 3.5000"], ["Recent experiments", "Kept changes"]),
    ([BASELINE, row(1, "keep", "LR up", -0.1, -3.0)], ["Kept changes", "- 0001 LR up -0.1000 (-3.0 sigma)"], []),
    ([BASELINE, row(1, "crash", "WIDTH 4096", log_tail="Traceback\nRuntimeError: CUDA out of memory")],
     ["Log tail of crashed 0001 (WIDTH 4096)", "CUDA out of memory"], []),
    ([BASELINE, row(1, "discard", "x", 0.1), {"id": 2, "kind": "reject", "status": "note", "about": 1, "text": "too hacky", "by": "ana"},
      {"id": 3, "kind": "try", "status": "note", "text": "rotary embeddings", "by": "bo"}],
     ["rejected 0001 (x) (from @ana): too hacky", "try (from @bo): rotary embeddings"], []),
    ([BASELINE] + [row(i, "discard", f"idea {i}", 0.01) for i in range(1, DISCARD_STREAK + 1)],
     [f"The last {DISCARD_STREAK} experiments were all discarded. Change direction"], []),
    ([BASELINE] + [row(i, "discard", f"idea {i}", 0.01) for i in range(1, DISCARD_STREAK)],
     [], ["Change direction"]),
    ([BASELINE, row(1, "keep", "a", -0.1)] + [row(i, "discard", f"idea {i}", 0.01) for i in range(2, DISCARD_STREAK + 2)]
     + [row(9, "keep", "b", -0.1)], [], ["Change direction"]),
], ids=["baseline-only", "kept", "crash-tail", "human-direction", "discard-streak", "short-streak", "streak-broken"])
def test_history(records, present, absent):
    text = history_text(records)
    for part in present:
        assert part in text
    for part in absent:
        assert part not in text


def test_what_is_running_and_the_repair_request():
    text = request_text([BASELINE], "val_bpb", "minimize", running=("LR up",),
                        repair={"id": 4, "description": "WIDTH 4096", "log_tail": "RuntimeError: boom",
                                "files": {"train.py": "WIDTH = 4096\n"}})
    assert "Running now (do not propose these again): LR up" in text
    assert "Experiment 0004 (WIDTH 4096) crashed" in text and "RuntimeError: boom" in text
    assert '<file path="train.py">\nWIDTH = 4096\n' in text and text.endswith("`propose_change` tool.")
