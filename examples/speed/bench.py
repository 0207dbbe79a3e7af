"""The benchmark: time to render a fixed workload, and a fingerprint of what it rendered.

Frozen (listed in `harness`): experiments change templite/, never this. It prints

    ---
    time_us:     <fastest of many rounds, microseconds per round of the whole workload>
    fingerprint: <sha256 of every output, first 16 hex digits>

and exits 1 when the fingerprint differs from EXPECTED: a change that is faster because it
renders something else is a crash, not a win. The round count follows the budget
(AUTORESEARCH_BUDGET_SECONDS, set by the bot); the fastest round is reported because
interference from other processes only ever makes a round slower.

The candidate never runs in this process. `worker.py` imports templite in a child process;
this scorer asks it for batches of ROUNDS_PER_BATCH rounds, times each batch's round trip
with its own clock (a round's time is the fastest batch's over ROUNDS_PER_BATCH, so the
pipe's overhead is shared by the rounds of a batch), checks that every batch returns the
same bytes, hashes them itself and prints the summary itself. What the child prints is
captured and shown with a `[renderer]` prefix, so it cannot be read as the metric. See the
README for what this does not protect against.
"""

import os
import sys

HERE = os.path.dirname(os.path.realpath(__file__))
# Candidate code runs in this directory (the gate imports templite): a json.py or hashlib.py
# it leaves here must not shadow the modules the scorer imports next.
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != HERE]

import hashlib  # noqa: E402
import json  # noqa: E402
import secrets  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

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


ROUNDS_PER_BATCH = 5  # rounds per request to the renderer process: a round trip costs ~10-100 us
MAX_REPLY = 1 << 24  # bytes; a reply claiming more is refused rather than read
ECHO_LINES = 40  # how much of the renderer's own output is shown, from its end


class RendererFailed(Exception):
    pass


def send(child, body):
    child.stdin.write(struct.pack(">I", len(body)) + body)
    child.stdin.flush()


def receive(child):
    header = child.stdout.read(4)
    if len(header) < 4:
        raise RendererFailed("the renderer process stopped replying")
    (length,) = struct.unpack(">I", header)
    if length > MAX_REPLY:
        raise RendererFailed(f"the renderer sent a {length}-byte reply; at most {MAX_REPLY} are read")
    body = child.stdout.read(length)
    if len(body) < length:
        raise RendererFailed("the renderer process stopped replying")
    return body


def echo(captured):
    """Show the renderer's own output on stderr, every line prefixed: it cannot pose as ours.

    splitlines() breaks at every character any reader may take as a line end (\\r included),
    so no piece of it can start a line of this process's output.
    """
    captured.seek(0)
    lines = captured.read().decode("utf-8", "replace").splitlines()
    if len(lines) > ECHO_LINES:
        print(f"[renderer] ... {len(lines) - ECHO_LINES} earlier lines not shown", file=sys.stderr)
    for line in lines[-ECHO_LINES:]:
        print(f"[renderer] {line[:300]}", file=sys.stderr)
    sys.stderr.flush()


def stop(child):
    """Let the renderer exit at the end of its input (flushing what it printed), else kill it."""
    try:
        child.stdin.close()
    except OSError:
        pass
    try:
        child.wait(timeout=2)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    child.stdout.close()


def measure(child, jobs, budget):
    """(fingerprint, fastest round in seconds, batches): every batch timed by this process's clock."""
    if receive(child) != b"ready":
        raise RendererFailed("the renderer did not start the protocol with `ready`")
    send(child, json.dumps({"repeat": ROUNDS_PER_BATCH, "jobs": jobs}).encode())

    def round_trip():
        nonce = secrets.token_bytes(16)  # a reply written before the request cannot match it
        started = time.perf_counter()
        send(child, nonce)
        reply = receive(child)
        elapsed = time.perf_counter() - started
        if reply[:16] != nonce:
            raise RendererFailed("the renderer answered a round with another round's nonce")
        return reply[16:], elapsed

    rendered, _ = round_trip()  # the untimed first batch: the outputs every batch must repeat
    fingerprint = hashlib.sha256(rendered).hexdigest()[:16]
    best, batches = float("inf"), 0
    deadline = time.perf_counter() + budget
    while batches < 5 or time.perf_counter() < deadline:
        outputs, elapsed = round_trip()
        if outputs != rendered:
            different = hashlib.sha256(outputs).hexdigest()[:16]
            raise RendererFailed(f"fingerprint {different} of batch {batches + 1} differs from the first "
                                 f"batch's {fingerprint}: every round must render the same bytes")
        best = min(best, elapsed)
        batches += 1
    return fingerprint, best / ROUNDS_PER_BATCH, batches


def main():
    budget = float(os.environ.get("AUTORESEARCH_BUDGET_SECONDS", "1"))
    jobs = workload()
    with tempfile.TemporaryFile() as captured:
        child = subprocess.Popen([sys.executable, "-I", os.path.join(HERE, "worker.py"), HERE], cwd=HERE,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=captured)
        failure = None
        try:
            fingerprint, best, batches = measure(child, jobs, budget)
        except (RendererFailed, OSError) as exc:  # OSError: a broken pipe, the child gone
            failure = exc
        finally:
            stop(child)
        echo(captured)
    if failure is not None:
        print(f"{failure} (exit code {child.returncode}); see its output above", file=sys.stderr)
        sys.exit(1)
    print("---")
    print(f"time_us:     {best * 1e6:.1f}")
    print(f"fingerprint: {fingerprint}")
    print(f"rounds:      {batches * ROUNDS_PER_BATCH}")
    print(f"batches:     {batches}")
    sys.stdout.flush()
    if fingerprint != EXPECTED:
        print(f"fingerprint {fingerprint} != expected {EXPECTED}: the outputs changed, so the time "
              "does not count (faster but wrong is not faster)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
