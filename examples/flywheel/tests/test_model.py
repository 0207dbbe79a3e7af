"""The gate: the model must stay a usable model, whatever its score. Frozen (in `harness`)."""

import csv
import math
import unittest

from features import featurize
from model import train


def rows(count):
    with open("data/customers.csv", newline="") as handle:
        return list(csv.DictReader(handle))[:count]


class UsableModel(unittest.TestCase):
    def test_features_are_finite_numbers_of_one_width(self):
        widths = set()
        for row in rows(300):
            values = featurize(row)
            widths.add(len(values))
            self.assertTrue(all(isinstance(v, float) and math.isfinite(v) for v in values), values)
        self.assertEqual(len(widths), 1)

    def test_predictions_are_labels_and_need_no_label(self):
        sample = rows(200)
        predict = train(sample)
        for row in sample[:50]:
            unlabeled = {k: v for k, v in row.items() if k != "churned"}
            self.assertIn(predict(unlabeled), (0, 1))

    def test_training_is_deterministic(self):
        sample = rows(200)
        first, second = train(sample), train(sample)
        self.assertEqual([first(r) for r in sample], [second(r) for r in sample])


if __name__ == "__main__":
    unittest.main()
