"""The wording: one template per sentence. `{name}`-style fields come from the product."""

# ---------------------------------------------------------------------------
# Wording (experiments change these)

ADJECTIVES = 2  # hype adjectives in the opening (0 to 3)

TEASER = "Looking for a {adjectives}{category} for {audience}? Meet {name}."
OPENING = "{name} is the {adjectives}{category} for {audience}."
FEATURES = "It comes with {features}."
PRICE = "Yours for {price}."
CALL_TO_ACTION = "Order yours today{ending}"
HYPE = ("brilliant", "game-changing", "unbelievable")
