"""Logistic regression in plain Python: train on labeled rows, predict churn (0/1)."""

import math

from features import featurize

# ---------------------------------------------------------------------------
# Training (experiments change these)

LEARNING_RATE = 0.5  # step size of full-batch gradient descent
EPOCHS = 30  # passes over the training rows
L2 = 0.01  # weight decay
THRESHOLD = 0.5  # predicted probability above which a customer counts as churning

# ---------------------------------------------------------------------------


def _sigmoid(z):
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def train(rows):
    """Fit weights on `rows` (dicts with a `churned` label); return a predict(row) -> 0/1 function."""
    xs = [featurize(row) for row in rows]
    ys = [int(row["churned"]) for row in rows]
    width = len(xs[0])
    weights, bias = [0.0] * width, 0.0
    for _ in range(EPOCHS):
        grad, grad_bias = [0.0] * width, 0.0
        for x, y in zip(xs, ys):
            error = _sigmoid(sum(w * v for w, v in zip(weights, x)) + bias) - y
            for i, v in enumerate(x):
                grad[i] += error * v
            grad_bias += error
        n = len(xs)
        weights = [w - LEARNING_RATE * (g / n + L2 * w) for w, g in zip(weights, grad)]
        bias -= LEARNING_RATE * grad_bias / n

    def predict(row):
        x = featurize(row)
        return int(_sigmoid(sum(w * v for w, v in zip(weights, x)) + bias) > THRESHOLD)

    return predict
