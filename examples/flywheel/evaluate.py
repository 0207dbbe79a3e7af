"""Train on the training split, score on the held-out split. Frozen (listed in `harness`).

The split is by customer id (every fifth customer is held out), so it is stable as rows
are appended: a customer never moves between splits. Prints the summary block:

    ---
    f1:        0.612345   (churned = positive class; the metric)
    accuracy:  0.801234
    rows:      1200
"""

import csv
import time

from model import train

DATA = "data/customers.csv"


def held_out(row):
    return int(row["customer_id"]) % 5 == 0


def main():
    with open(DATA, newline="") as handle:
        rows = list(csv.DictReader(handle))
    training = [row for row in rows if not held_out(row)]
    test = [row for row in rows if held_out(row)]
    started = time.perf_counter()
    predict = train([dict(row) for row in training])
    seconds = time.perf_counter() - started
    # Predictions see the features only: the label is removed before the model gets the row.
    predictions = [predict({k: v for k, v in row.items() if k != "churned"}) for row in test]
    truth = [int(row["churned"]) for row in test]
    tp = sum(p and t for p, t in zip(predictions, truth))
    fp = sum(p and not t for p, t in zip(predictions, truth))
    fn = sum(t and not p for p, t in zip(predictions, truth))
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    accuracy = sum(p == t for p, t in zip(predictions, truth)) / len(test)
    print("---")
    print(f"f1:               {f1:.6f}")
    print(f"accuracy:         {accuracy:.6f}")
    print(f"positive_rate:    {sum(truth) / len(truth):.6f}")
    print(f"rows:             {len(rows)}")
    print(f"training_seconds: {seconds:.3f}")


if __name__ == "__main__":
    main()
