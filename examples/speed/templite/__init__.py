"""templite: a small template renderer (variables, filters, for, if, comments, HTML escaping)."""

from templite.parser import TemplateSyntaxError, parse
from templite.renderer import render

__all__ = ["TemplateSyntaxError", "parse", "render"]
