"""The gate: whatever the score, every blurb must be well-formed. Frozen (listed in `harness`)."""

import unittest

from generator import blurb
from score import PRODUCTS


class WellFormed(unittest.TestCase):
    def test_every_product_gets_one_clean_paragraph(self):
        for product in PRODUCTS:
            text = blurb(product)
            self.assertTrue(text.strip(), product["name"])
            self.assertNotIn("{", text, "a template field was left unfilled")
            self.assertNotIn("\n", text)
            self.assertNotIn("  ", text)
            self.assertRegex(text, r"[.!?]$", "the blurb ends mid-sentence")

    def test_deterministic(self):
        for product in PRODUCTS:
            self.assertEqual(blurb(product), blurb(dict(product)))

    def test_unknown_products_work_too(self):
        product = {"name": "X", "category": "thing", "audience": "anyone", "price": 1, "features": []}
        self.assertIn("X", blurb(product))


if __name__ == "__main__":
    unittest.main()
