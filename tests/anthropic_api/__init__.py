"""A loopback Anthropic Messages API for tests (see server.py and README.md)."""
