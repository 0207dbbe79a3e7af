"""autoresearch-bot: propose one change to train.py, train under a fixed budget, keep or discard."""

__version__ = "0.1.0"
