"""A deterministic product-blurb generator: product facts in, one short paragraph out."""

import rules
import templates


def _join(items):
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def sentences(product):
    """The blurb's sentences in order: opening, features, price, call to action."""
    hype = templates.HYPE[: max(0, templates.ADJECTIVES)]
    fields = dict(product, adjectives="".join(word + " " for word in hype))
    opening = templates.OPENING if rules.NAME_FIRST else templates.TEASER
    out = [opening.format(**fields)]
    shown = product["features"][: max(0, rules.FEATURES_SHOWN)]
    if shown:
        out.append(templates.FEATURES.format(features=_join(shown)))
    if rules.SHOW_PRICE:
        out.append(templates.PRICE.format(price=f"${product['price']:.2f}"))
    ending = "!" * rules.EXCLAMATIONS if rules.EXCLAMATIONS > 0 else "."
    out.append(templates.CALL_TO_ACTION.format(ending=ending))
    return out


def blurb(product):
    parts = sentences(product)
    while len(parts) > 1 and len(" ".join(parts).split()) > rules.MAX_WORDS:
        parts.pop()  # the closing sentences go first; the opening always stays
    return " ".join(parts)
