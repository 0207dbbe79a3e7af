"""The gate: what templite must keep doing however fast it gets. Frozen (listed in `harness`)."""

import unittest

from templite import TemplateSyntaxError, render


class Variables(unittest.TestCase):
    def test_plain_and_dotted_names(self):
        context = {"user": {"name": "Ada", "team": {"name": "Engines"}}, "n": 3}
        self.assertEqual(render("{{ user.name }} of {{user.team.name}}: {{ n }}", context), "Ada of Engines: 3")

    def test_attributes_of_objects(self):
        class Point:
            x, y = 1, 2
        self.assertEqual(render("({{ p.x }}, {{ p.y }})", {"p": Point()}), "(1, 2)")

    def test_missing_names_render_empty(self):
        self.assertEqual(render("[{{ nope }}][{{ user.nope }}]", {"user": {}}), "[][]")

    def test_filters_chain_left_to_right(self):
        context = {"s": "  mixed Case  ", "xs": [1, 2, 3]}
        self.assertEqual(render("{{ s|strip|upper }}|{{ s|strip|lower }}|{{ xs|length }}", context),
                         "MIXED CASE|mixed case|3")
        self.assertEqual(render("{{ s|strip|title }}", context), "Mixed Case")


class Escaping(unittest.TestCase):
    def test_html_special_characters(self):
        self.assertEqual(render("{{ s }}", {"s": "<a href=\"x\">Tom & 'Jerry'</a>"}),
                         "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#x27;Jerry&#x27;&lt;/a&gt;")

    def test_safe_is_not_escaped_and_template_text_never_is(self):
        self.assertEqual(render("<b>{{ s|safe }}</b>", {"s": "<i>&</i>"}), "<b><i>&</i></b>")

    def test_special_characters_at_every_position(self):
        # Whatever chunking the escaper uses, no character may be skipped or doubled.
        for size in range(1, 40):
            for where in range(size):
                text = "a" * where + "<" + "b" * (size - where - 1) + '"&'
                expected = "a" * where + "&lt;" + "b" * (size - where - 1) + "&quot;&amp;"
                self.assertEqual(render("{{ t }}", {"t": text}), expected)

    def test_long_text_round_trip(self):
        text = "x<y & y>z 'q' \"w\" " * 500
        rendered = render("{{ t }}", {"t": text})
        unescaped = (rendered.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
                     .replace("&#x27;", "'").replace("&amp;", "&"))
        self.assertEqual(unescaped, text)


class Blocks(unittest.TestCase):
    def test_for_loops_and_nesting(self):
        template = "{% for row in rows %}[{% for c in row.cells %}{{ c }},{% endfor %}]{% endfor %}"
        rows = [{"cells": [1, 2]}, {"cells": []}, {"cells": ["<"]}]
        self.assertEqual(render(template, {"rows": rows}), "[1,2,][][&lt;,]")

    def test_loop_variable_shadows_and_is_gone_after_the_loop(self):
        template = "{{ x }}{% for x in xs %}{{ x }}{% endfor %}{{ x }}"
        self.assertEqual(render(template, {"x": "o", "xs": ["a", "b"]}), "oabo")

    def test_if_else(self):
        template = "{% if ok %}yes{% else %}no{% endif %}"
        self.assertEqual([render(template, {"ok": v}) for v in (1, 0, [], "x", None)],
                         ["yes", "no", "no", "yes", "no"])

    def test_comments_vanish(self):
        self.assertEqual(render("a{# not {{ shown }} #}b", {}), "ab")


class Errors(unittest.TestCase):
    def test_syntax_errors_name_the_problem(self):
        cases = {
            "{% for x in %}": "expected {% for x in items %}",
            "{% if a %}x": "never closed",
            "{% endif %}": "does not close",
            "{% for x in xs %}{% endif %}": "does not close",
            "{{ a|shout }}": "unknown filter 'shout'",
            "{% while x %}": "unknown tag",
            "{{ 1 + 2 }}": "is not a name",
            "{% else %}": "outside an {% if %}",
        }
        for template, message in cases.items():
            with self.assertRaises(TemplateSyntaxError) as raised:
                render(template, {})
            self.assertIn(message, str(raised.exception), template)


class Caching(unittest.TestCase):
    def test_many_templates_interleaved_render_their_own_content(self):
        # A cache keyed wrongly, or evicting wrongly, mixes templates up.
        templates = [f"T{i}:{{{{ v }}}}" + "-" * i for i in range(30)]
        for round_ in range(3):
            for i, template in enumerate(templates):
                self.assertEqual(render(template, {"v": round_}), f"T{i}:{round_}" + "-" * i)


if __name__ == "__main__":
    unittest.main()
