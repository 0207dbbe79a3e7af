"""Stand-ins the benchmarks share: a run that only sleeps, so cores never limit what is measured."""

import threading
import time


class SleepingHandle:
    """A runner handle whose run sleeps `seconds`, then returns `result`; its (start, end) goes to `spans`."""

    def __init__(self, seconds, result, spans):
        self._done, self._result = threading.Event(), result
        started = time.monotonic()

        def work():
            time.sleep(seconds)
            spans.append((started, time.monotonic()))
            self._done.set()
        threading.Thread(target=work, daemon=True).start()

    def result(self, timeout=None):
        return self._result if self._done.wait(timeout) else None

    def cancel(self):
        pass
