"""What the blurb generator does: the rules experiments tune.

Each constant is a knob the offline proposer moves one step at a time; a language-model
proposer may also rewrite the logic in generator.py and the wording in templates.py.
"""

# ---------------------------------------------------------------------------
# Rules (experiments change these)

NAME_FIRST = 0  # 1: the opening sentence names the product; 0: it teases first
FEATURES_SHOWN = 1  # features listed in the feature sentence
SHOW_PRICE = 0  # 1: add the price sentence
MAX_WORDS = 60  # drop closing sentences until the blurb fits (the opening always stays)
EXCLAMATIONS = 2  # exclamation marks that end the call to action (0: a full stop)
