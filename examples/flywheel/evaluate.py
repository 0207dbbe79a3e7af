"""Train on the training split, score on the held-out split. Frozen (listed in `harness`).

The split is by customer id (every fifth customer is held out), so it is stable as rows
are appended: a customer never moves between splits. Prints the summary block:

    ---
    f1:        0.612345   (churned = positive class; the metric)
    accuracy:  0.801234
    rows:      1200

The candidate never runs in this process. `worker.py` imports the model in a child process
and gets the training rows and the held-out rows without their `churned` label; it sends
back one prediction per held-out row. This scorer checks them (one per row, each 0 or 1),
computes F1 and accuracy itself and prints the summary itself, last. What the child prints
is captured and shown with a `[model]` prefix, so it cannot be read as the summary.
`training_seconds` is this process's clock around the child's training and predicting.
See the README for what this does not protect against.
"""

import os
import sys

HERE = os.path.dirname(os.path.realpath(__file__))
# Candidate code runs in this directory (the gate imports the model): a csv.py or json.py
# it leaves here must not shadow the modules the scorer imports next.
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != HERE]

import csv  # noqa: E402
import json  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

DATA = "data/customers.csv"
MAX_REPLY = 1 << 24  # bytes; a reply claiming more is refused rather than read
ECHO_LINES = 40  # how much of the model's own output is shown, from its end


class ModelFailed(Exception):
    pass


def held_out(row):
    return int(row["customer_id"]) % 5 == 0


def send(child, body):
    child.stdin.write(struct.pack(">I", len(body)) + body)
    child.stdin.flush()


def receive(child):
    header = child.stdout.read(4)
    if len(header) < 4:
        raise ModelFailed("the model process stopped replying")
    (length,) = struct.unpack(">I", header)
    if length > MAX_REPLY:
        raise ModelFailed(f"the model sent a {length}-byte reply; at most {MAX_REPLY} are read")
    body = child.stdout.read(length)
    if len(body) < length:
        raise ModelFailed("the model process stopped replying")
    return body


def echo(captured):
    """Show the model's own output on stderr, every line prefixed: it cannot pose as ours.

    splitlines() breaks at every character any reader may take as a line end (\\r included),
    so no piece of it can start a line of this process's output.
    """
    captured.seek(0)
    lines = captured.read().decode("utf-8", "replace").splitlines()
    if len(lines) > ECHO_LINES:
        print(f"[model] ... {len(lines) - ECHO_LINES} earlier lines not shown", file=sys.stderr)
    for line in lines[-ECHO_LINES:]:
        print(f"[model] {line[:300]}", file=sys.stderr)
    sys.stderr.flush()


def stop(child):
    """Let the model exit at the end of its input (flushing what it printed), else kill it."""
    try:
        child.stdin.close()
    except OSError:
        pass
    try:
        child.wait(timeout=2)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    child.stdout.close()


def predictions(child, training, unlabeled):
    """The child's predictions for `unlabeled`, checked, and the seconds it took by our clock."""
    if receive(child) != b"ready":
        raise ModelFailed("the model did not start the protocol with `ready`")
    message = json.dumps({"training": training, "test": unlabeled}).encode()
    started = time.perf_counter()
    send(child, message)
    reply = receive(child)
    seconds = time.perf_counter() - started
    try:
        predicted = json.loads(reply)
    except ValueError:
        raise ModelFailed("the model's reply is not JSON") from None
    if not isinstance(predicted, list) or len(predicted) != len(unlabeled):
        count = len(predicted) if isinstance(predicted, list) else type(predicted).__name__
        raise ModelFailed(f"the model sent {count} predictions for {len(unlabeled)} held-out rows")
    for index, value in enumerate(predicted):
        if type(value) not in (int, bool) or value not in (0, 1):
            raise ModelFailed(f"prediction {index} is {value!r}, not 0 or 1")
    return [int(value) for value in predicted], seconds


def main():
    with open(DATA, newline="") as handle:
        rows = list(csv.DictReader(handle))
    training = [row for row in rows if not held_out(row)]
    test = [row for row in rows if held_out(row)]
    # The child sees the features only: the label never leaves this process.
    unlabeled = [{k: v for k, v in row.items() if k != "churned"} for row in test]
    with tempfile.TemporaryFile() as captured:
        child = subprocess.Popen([sys.executable, "-I", os.path.join(HERE, "worker.py"), HERE], cwd=HERE,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=captured)
        failure = None
        try:
            predicted, seconds = predictions(child, training, unlabeled)
        except (ModelFailed, OSError) as exc:  # OSError: a broken pipe, the child gone
            failure = exc
        finally:
            stop(child)
        echo(captured)
    if failure is not None:
        print(f"{failure} (exit code {child.returncode}); see its output above", file=sys.stderr)
        sys.exit(1)
    truth = [int(row["churned"]) for row in test]
    tp = sum(p and t for p, t in zip(predicted, truth))
    fp = sum(p and not t for p, t in zip(predicted, truth))
    fn = sum(t and not p for p, t in zip(predicted, truth))
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    accuracy = sum(p == t for p, t in zip(predicted, truth)) / len(test)
    print("---")
    print(f"f1:               {f1:.6f}")
    print(f"accuracy:         {accuracy:.6f}")
    print(f"positive_rate:    {sum(truth) / len(truth):.6f}")
    print(f"rows:             {len(rows)}")
    print(f"training_seconds: {seconds:.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
