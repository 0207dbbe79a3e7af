"""The scorer: 5 products x 5 binary assertions = a score out of 25. Frozen (in `harness`).

Prints a pass/fail grid, then the summary block the bot reads:

    ---
    score: 17
    total: 25
"""

import re

from generator import blurb

PRODUCTS = [
    {"name": "Aeropress Go", "category": "coffee maker", "audience": "travellers", "price": 31.95,
     "features": ["a built-in mug", "a 1-minute brew", "a micro-filter that removes grit"]},
    {"name": "Trailhead 40", "category": "backpack", "audience": "weekend hikers", "price": 129.0,
     "features": ["a rain cover", "a ventilated back panel", "hip-belt pockets", "a hydration sleeve"]},
    {"name": "Lumen Desk Lamp", "category": "lamp", "audience": "late-night readers", "price": 58.5,
     "features": ["five colour temperatures", "a USB-C charging port"]},
    {"name": "Pocket Loom", "category": "weaving kit", "audience": "curious beginners", "price": 24.0,
     "features": ["a wooden frame", "six yarn colours", "an illustrated guide with twelve first projects"]},
    {"name": "Quiet Keys K2", "category": "mechanical keyboard", "audience": "open-plan offices",
     "price": 89.99, "features": ["dampened switches", "Bluetooth for three devices", "a 200-hour battery"]},
]


def first_sentence(text):
    return re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]


ASSERTIONS = {
    "name-first": lambda p, text: p["name"] in first_sentence(text),
    "short": lambda p, text: len(text.split()) <= 40,
    "price": lambda p, text: f"${p['price']:.2f}" in text,
    "two-features": lambda p, text: sum(feature in text for feature in p["features"]) >= 2,
    "calm": lambda p, text: text.count("!") <= 1,
}


def main():
    score = 0
    print(f"{'product':18} " + " ".join(f"{name:>12}" for name in ASSERTIONS))
    for product in PRODUCTS:
        text = blurb(product)
        results = [check(product, text) for check in ASSERTIONS.values()]
        score += sum(results)
        print(f"{product['name']:18} " + " ".join(f"{'pass' if ok else 'FAIL':>12}" for ok in results))
        print(f"    {text}")
    print("---")
    print(f"score: {score}")
    print(f"total: {len(PRODUCTS) * len(ASSERTIONS)}")


if __name__ == "__main__":
    main()
