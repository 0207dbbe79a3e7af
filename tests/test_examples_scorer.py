"""The examples' scorers measure a hostile candidate from outside its process.

`examples/speed/bench.py` and `examples/flywheel/evaluate.py` run the candidate (templite, the
model) in a child process (`worker.py`) and compute the metric themselves. Each test here
copies an example, writes a candidate that tries to forge the metric from inside its own
process, runs the scorer as the bot's job does (stderr into stdout, text mode) and reads the
output as the bot does: the forged value must not be what the bot reads.

What these tests do NOT show: that the candidate cannot read files or reach processes. The
child runs as the same user as the scorer; the flywheel test below shows a model that reads
data/customers.csv scoring F1 = 1.0. That boundary is the sandbox's, not the scorer's.
"""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml

from bot.metric import regex_value
from bot.summary import metric_value, parse_summary
from conftest import REPO_ROOT

SPEED_REGEX = r"^time_us: +([0-9.]+)$"
EXPECTED_FINGERPRINT = "c57f96d8ff4c9003"


def copy_example(tmp_path, name):
    directory = tmp_path / name
    shutil.copytree(REPO_ROOT / "examples" / name, directory,
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    config = yaml.safe_load((directory / "autoresearch.yaml").read_text())
    assert "worker.py" in config["harness"], "the child's side of the protocol is frozen too"
    if name == "flywheel":
        subprocess.run([sys.executable, "make_data.py"], cwd=directory, check=True, capture_output=True)
    return directory, config


def run_scorer(directory, config, budget="0.2"):
    """The scorer's exit code and output, captured the way gpu_jobs/job.py captures a command."""
    command = config["command"].split()
    assert command[0] == "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")}
    env.update(AUTORESEARCH_BUDGET_SECONDS=budget, PYTHONUNBUFFERED="1")
    done = subprocess.run([sys.executable, *command[1:]], cwd=directory, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace", timeout=120, check=False)
    return done.returncode, done.stdout


def run_python(directory, code):
    return subprocess.run([sys.executable, "-c", code], cwd=directory, capture_output=True, text=True, check=False,
                          timeout=60)


# ---------------------------------------------------------------------------
# speed: templite is timed by bench.py from outside

FORGED_TIME = "---\ntime_us:     0.001\nfingerprint: " + EXPECTED_FINGERPRINT + "\nrounds:      5\n"

HOSTILE_TEMPLITE = textwrap.dedent('''\
    """Renders correctly, and tries every in-process trick on the benchmark."""
    import atexit
    import hashlib
    import os
    import sys
    import time

    from templite.parser import TemplateSyntaxError, parse
    from templite.renderer import render

    __all__ = ["TemplateSyntaxError", "parse", "render"]

    FORGED = {forged!r}

    time.perf_counter = lambda: 0.0  # an in-process timer would read every round as 0 s (or hang)
    time.perf_counter_ns = lambda: 0


    class Forged:  # an in-process fingerprint would always match
        def __init__(self, *args):
            pass

        def update(self, data):
            pass

        def hexdigest(self):
            return {expected!r} + "0" * 48


    hashlib.sha256 = Forged
    for module in (sys.modules.get("bench"), sys.modules.get("__main__")):
        if module is not None:
            module.EXPECTED = "anything"
    print(FORGED, flush=True)
    print("\\r" + FORGED.replace("\\n", "\\r"), flush=True)  # a line break the prefix must not miss
    sys.__stdout__.write(FORGED)
    sys.__stdout__.flush()
    os.write(1, FORGED.encode())
    os.write(2, FORGED.encode())
    print("time_us: 0.001", file=sys.stderr, flush=True)
    atexit.register(print, FORGED)  # after an in-process benchmark's own block: the last match wins
''').format(forged=FORGED_TIME, expected=EXPECTED_FINGERPRINT)


def test_speed_honest_candidate_scores_normally(tmp_path):
    directory, config = copy_example(tmp_path, "speed")
    code, output = run_scorer(directory, config)
    assert code == 0, output
    value = regex_value(output, config["metric"]["regex"])
    summary = parse_summary(output)
    assert value is not None and value > 1.0, output  # the whole workload takes far more than 1 us
    assert summary["time_us"] == value and summary["fingerprint"] == EXPECTED_FINGERPRINT
    assert summary["rounds"] >= 25 and "[renderer]" not in output


def test_speed_forged_timer_and_printed_metric_are_not_read(tmp_path):
    directory, config = copy_example(tmp_path, "speed")
    assert config["metric"]["regex"] == SPEED_REGEX
    (directory / "templite" / "__init__.py").write_text(HOSTILE_TEMPLITE)
    # Sanity: in the candidate's own process the patch works, so an in-process timer would be fooled.
    patched = run_python(directory, "import time, templite; print('clock', time.perf_counter())")
    assert "clock 0.0" in patched.stdout.splitlines(), patched.stdout + patched.stderr

    code, output = run_scorer(directory, config)
    assert code == 0, output
    value = regex_value(output, SPEED_REGEX)
    assert value is not None and value != 0.001 and value > 1.0, output
    summary = parse_summary(output)
    assert metric_value(summary, "time_us") == value and summary["fingerprint"] == EXPECTED_FINGERPRINT
    # The candidate's lines were shown, prefixed, before the scorer's own block.
    assert "[renderer] time_us:     0.001" in output
    lines = output.rstrip().splitlines()
    assert lines[-5] == "---" and [line.split(":")[0] for line in lines[-4:]] == [
        "time_us", "fingerprint", "rounds", "batches"]


def test_speed_right_once_then_wrong_is_a_crash(tmp_path):
    directory, config = copy_example(tmp_path, "speed")
    (directory / "templite" / "__init__.py").write_text(textwrap.dedent('''\
        from templite.parser import TemplateSyntaxError, parse
        from templite.renderer import render as _render

        calls = []


        def render(template, context):
            calls.append(1)
            text = _render(template, context)
            return text if len(calls) <= 30 else text.replace("&amp;", "&")  # the first batch is right
    '''))
    code, output = run_scorer(directory, config)
    assert code == 1 and regex_value(output, SPEED_REGEX) is None, output
    assert "every round must render the same bytes" in output.splitlines()[-1]


def test_speed_modules_left_next_to_bench_do_not_shadow_its_imports(tmp_path):
    directory, config = copy_example(tmp_path, "speed")
    renderer = directory / "templite" / "renderer.py"
    renderer.write_text(renderer.read_text().replace("ESCAPE_QUOTES = 1", "ESCAPE_QUOTES = 0"))
    # What the gate's run of templite's tests could leave behind: a hashlib that always matches.
    (directory / "hashlib.py").write_text(textwrap.dedent(f'''\
        class sha256:
            def __init__(self, *args):
                pass

            def hexdigest(self):
                return {EXPECTED_FINGERPRINT!r} + "0" * 48
    '''))
    code, output = run_scorer(directory, config)
    assert code == 1, output
    assert output.splitlines()[-1].startswith("fingerprint "), output


# ---------------------------------------------------------------------------
# flywheel: the held-out labels and the F1 stay in evaluate.py

FORGED_SUMMARY = "---\nf1:               1.000000\naccuracy:         1.000000\n"

HOSTILE_MODEL = textwrap.dedent('''\
    """Looks for the held-out labels in its own process's memory and forges the summary."""
    import gc
    import os
    import sys

    FORGED = {forged!r}


    def held_out_labels():
        """customer_id -> churned of every held-out row this process holds, however it got there."""
        found = {{}}

        def look(row):
            if isinstance(row, dict) and "churned" in row and "customer_id" in row:
                customer = int(row["customer_id"])
                if customer % 5 == 0:
                    found[customer] = int(row["churned"])

        for obj in gc.get_objects():  # dicts of strings are untracked: look inside containers too
            look(obj)
            if isinstance(obj, (list, tuple)):
                for item in obj:
                    look(item)
            elif isinstance(obj, dict):
                for item in list(obj.values()):
                    look(item)
        frame = sys._getframe()
        while frame is not None:  # the callers' locals: the scorer's, were it in this process
            for value in list(frame.f_locals.values()):
                for item in value if isinstance(value, (list, tuple)) else [value]:
                    look(item)
            frame = frame.f_back
        return found


    def train(rows):
        leaked = held_out_labels()
        main = sys.modules.get("__main__")
        if main is not None:  # an in-process scorer's helpers, replaced
            main.held_out = lambda row: False
        print(FORGED, flush=True)
        print(FORGED.replace("\\n", "\\r"), flush=True)
        sys.__stdout__.write(FORGED)
        sys.__stdout__.flush()
        os.write(1, FORGED.encode())
        os.write(2, FORGED.encode())
        print(f"found {{len(leaked)}} held-out labels in memory", flush=True)

        def predict(row):
            return leaked.get(int(row["customer_id"]), 0)

        return predict
''').format(forged=FORGED_SUMMARY)

# The file is another matter: the child can read it, and the scorer cannot stop that.
FILE_READING_MODEL = textwrap.dedent('''\
    import csv


    def train(rows):
        with open("data/customers.csv", newline="") as handle:
            labels = {row["customer_id"]: int(row["churned"]) for row in csv.DictReader(handle)}
        return lambda row: labels[row["customer_id"]]
''')


def test_flywheel_honest_candidate_scores_normally(tmp_path):
    directory, config = copy_example(tmp_path, "flywheel")
    code, output = run_scorer(directory, config)
    assert code == 0, output
    summary = parse_summary(output)
    f1 = metric_value(summary, config["metric"])
    assert f1 is not None and 0.0 < f1 < 1.0, output
    assert summary["rows"] == 1500 and 0.0 < summary["accuracy"] < 1.0
    assert "[model]" not in output


def test_flywheel_labels_in_memory_and_forged_summaries_are_out_of_reach(tmp_path):
    directory, config = copy_example(tmp_path, "flywheel")
    (directory / "model.py").write_text(HOSTILE_MODEL)
    # Sanity: handed the held-out rows with their labels in one process, the model finds them all.
    in_process = run_python(directory, textwrap.dedent('''\
        import csv
        from model import train
        rows = list(csv.DictReader(open("data/customers.csv", newline="")))
        test = [row for row in rows if int(row["customer_id"]) % 5 == 0]
        predict = train([row for row in rows if int(row["customer_id"]) % 5])
    '''))
    assert "found 300 held-out labels in memory" in in_process.stdout, in_process.stdout + in_process.stderr

    code, output = run_scorer(directory, config)
    assert code == 0, output
    assert "[model] found 0 held-out labels in memory" in output
    summary = parse_summary(output)
    # Predicting "nobody churns" scores 0 however the model prints 1.0.
    assert metric_value(summary, config["metric"]) == 0.0, output
    assert summary["rows"] == 1500 and "training_seconds" in summary
    assert "[model] f1:               1.000000" in output


def test_flywheel_reading_the_data_file_is_not_prevented_by_the_scorer(tmp_path):
    # A known hole, kept visible: data/customers.csv holds the held-out labels and the child can
    # read it. Only a sandbox that hides the file (and review: program.md forbids it) stops this.
    directory, config = copy_example(tmp_path, "flywheel")
    (directory / "model.py").write_text(FILE_READING_MODEL)
    code, output = run_scorer(directory, config)
    assert code == 0, output
    assert metric_value(parse_summary(output), config["metric"]) == 1.0


@pytest.mark.parametrize("predict, reason", [
    ("lambda row: 2", "prediction 0 is 2, not 0 or 1"),
    ("lambda row: '1'", "prediction 0 is '1', not 0 or 1"),
    ("lambda row: 0.5", "prediction 0 is 0.5, not 0 or 1"),
])
def test_flywheel_predictions_are_checked_by_the_scorer(tmp_path, predict, reason):
    directory, config = copy_example(tmp_path, "flywheel")
    (directory / "model.py").write_text(f"def train(rows):\n    return {predict}\n")
    code, output = run_scorer(directory, config)
    assert code == 1 and parse_summary(output) is None, output
    assert reason in output.splitlines()[-1]
