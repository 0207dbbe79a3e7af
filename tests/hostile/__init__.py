"""Hostile train.py variants run through the real job (gpu_jobs.job.run_job, isolation="sandbox").

cases.py    the attacks (one module, imported by the tests and by benchmarks/hostile.py)
harness.py  the world each attack runs in (fake secrets, fake home, a real user repository,
            servers on loopback) and the judge of what came back
"""
