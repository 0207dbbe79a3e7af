"""TEST-ONLY Modal stand-in for subprocesses (the workflows' `run:` lines start `bot` as a process).

Python imports `sitecustomize` at start-up from the first directory on sys.path that has one, so a
test puts this directory on PYTHONPATH and sets MODAL_STANDIN_ROOT. Then `modal.Function.from_name`
answers with stand-ins: `run_experiment.spawn` runs gpu_jobs.modal_app.execute in a thread of this
process (the job body a container would run, on this CPU), `prepare_data.remote` runs
modal_app.prepare, `memory_preflight.remote` runs modal_app.check_memory. Everything else of the bot runs unchanged: the token check, the runner, the
polling. Nothing in bot/ knows about this file; without MODAL_STANDIN_ROOT it does nothing.
"""

import os

ROOT = os.environ.get("MODAL_STANDIN_ROOT")

if ROOT:
    import threading
    import time

    import modal

    class _Call:
        def __init__(self, target):
            self.object_id = f"fc-standin-{id(self)}"
            self.outcome = {}
            self.thread = threading.Thread(target=self._run, args=(target,), daemon=True)
            self.thread.start()

        def _run(self, target):
            try:
                self.outcome["value"] = target()
            except BaseException as exc:  # noqa: BLE001 - handed to get(), as Modal hands a remote error
                self.outcome["error"] = exc

        def get(self, timeout=None, *, index=0):
            self.thread.join(timeout)
            if self.thread.is_alive():
                raise TimeoutError  # what the SDK's get() raises while a call runs
            if "error" in self.outcome:
                raise self.outcome["error"]
            return self.outcome["value"]

        def cancel(self, terminate_containers=False):
            pass

    class _RunExperiment:
        def hydrate(self):
            return self

        def with_options(self, **options):
            return self

        def spawn(self, spec, files):
            from gpu_jobs import modal_app

            return _Call(lambda: modal_app.execute(spec, files, data_dir=os.path.join(ROOT, "volume"),
                                                   compile_dir=os.path.join(ROOT, "compile"),
                                                   local_cache=os.path.join(ROOT, "local")))

    class _PrepareData:
        def remote(self, data="parquet", files=None):
            from gpu_jobs import modal_app

            return modal_app.prepare(data, files or {}, data_dir=os.path.join(ROOT, "volume"))

    class _MemoryPreflight:
        def remote(self, spec, files):
            from gpu_jobs import modal_app

            return modal_app.check_memory(spec, files)

    def _from_name(app_name, name, *args, **kwargs):
        with open(os.path.join(ROOT, "lookups.log"), "a", encoding="utf-8") as log:
            log.write(f"{time.time():.3f} {app_name} {name}\n")
        if name == "memory_preflight":
            return _MemoryPreflight()
        return _RunExperiment() if name == "run_experiment" else _PrepareData()

    modal.Function.from_name = staticmethod(_from_name)
