"""The benchmark: time to render a fixed workload, and a fingerprint of what it rendered.

Frozen (listed in `harness`): experiments change templite/, never this. It prints

    ---
    time_us:     <fastest of many rounds, microseconds per round of the whole workload>
    fingerprint: <sha256 of every output, first 16 hex digits>

and exits 1 when the fingerprint differs from EXPECTED: a change that is faster because it
renders something else is a crash, not a win. The round count follows the budget
(AUTORESEARCH_BUDGET_SECONDS, set by the bot); the fastest round is reported because
interference from other processes only ever makes a round slower.
"""

import hashlib
import os
import sys
import time

from templite import render

EXPECTED = "c57f96d8ff4c9003"  # fingerprint of the workload's outputs; see the module docstring

PAGE = """<html><head><title>{{ site.title }}</title></head><body>
<h1>{{ page.heading|title }}</h1>{# the page body #}
{% for para in page.paragraphs %}<p>{{ para }}</p>
{% endfor %}{% if page.footer %}<footer>{{ page.footer }}</footer>{% else %}<footer>-</footer>{% endif %}
</body></html>"""
LIST = "<ul>{% for item in items %}<li class=\"{{ item.kind }}\">{{ item.name|upper }} ({{ item.tags|length }})</li>{% endfor %}</ul>"
TABLE = ("<table>{% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>"
         "{% endfor %}</table>")
EMAIL = """Dear {{ user.first|title }} {{ user.last|title }},
{% if user.vip %}Thank you for being a VIP & valued customer!{% else %}Thanks for shopping.{% endif %}
Your order {{ order.id }} ({{ order.lines|length }} lines):
{% for line in order.lines %}  - {{ line.qty }} x {{ line.name }} @ {{ line.price }}
{% endfor %}Notes: {{ order.notes }}
"""
NESTED = ("{% for section in sections %}<section><h2>{{ section.title }}</h2>{% for entry in section.entries %}"
          "{% if entry.show %}<div>{{ entry.text|strip }}</div>{% endif %}{% endfor %}</section>{% endfor %}")
SAFE = "<div>{{ snippet|safe }}</div><pre>{{ snippet }}</pre><p>{{ quote }}</p>"


def workload():
    """(template, context) pairs: deterministic, with plenty of text that needs escaping."""
    words = ["alpha", "<beta>", "gamma & delta", "\"epsilon\"", "zeta's", "eta", "theta>", "iota"]
    text = lambda i, n: " ".join(words[(i + k) % len(words)] for k in range(n))  # noqa: E731
    return [
        (PAGE, {"site": {"title": "Tom & Jerry's <Blog>"},
                "page": {"heading": "on escaping things", "paragraphs": [text(i, 40) for i in range(4)],
                         "footer": "(c) \"us\" & <them>"}}),
        (LIST, {"items": [{"kind": "k" + str(i % 3), "name": text(i, 3), "tags": list(range(i % 5))}
                          for i in range(15)]}),
        (TABLE, {"rows": [[text(r * 7 + c, 2) for c in range(6)] for r in range(6)]}),
        (EMAIL, {"user": {"first": "ada", "last": "lovelace", "vip": True},
                 "order": {"id": "A-1<2>", "notes": text(3, 30),
                           "lines": [{"qty": i, "name": text(i, 2), "price": f"${i}.99"} for i in range(6)]}}),
        (NESTED, {"sections": [{"title": text(s, 4), "entries": [{"show": (s + e) % 3 != 0, "text": "  " + text(e, 9)}
                                                                  for e in range(5)]} for s in range(4)]}),
        (SAFE, {"snippet": "<em>" + text(1, 25) + "</em>", "quote": text(5, 50)}),
    ]


def main():
    budget = float(os.environ.get("AUTORESEARCH_BUDGET_SECONDS", "1"))
    jobs = workload()
    outputs = [render(template, context) for template, context in jobs]
    fingerprint = hashlib.sha256("\0".join(outputs).encode()).hexdigest()[:16]
    best, rounds = float("inf"), 0
    deadline = time.perf_counter() + budget
    while rounds < 5 or time.perf_counter() < deadline:
        started = time.perf_counter()
        for template, context in jobs:
            render(template, context)
        best = min(best, time.perf_counter() - started)
        rounds += 1
    print("---")
    print(f"time_us:     {best * 1e6:.1f}")
    print(f"fingerprint: {fingerprint}")
    print(f"rounds:      {rounds}")
    if fingerprint != EXPECTED:
        print(f"fingerprint {fingerprint} != expected {EXPECTED}: the outputs changed, so the time "
              "does not count (faster but wrong is not faster)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
