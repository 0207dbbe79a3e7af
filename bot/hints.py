"""What a crash log says in words a newcomer can act on. Pure.

A baseline that dies in seconds with `No module named 'kernels'` or `Torch not compiled with
CUDA enabled` is not a bug in train.py: the repository needs a package, or a CUDA GPU, that this
machine lacks. Saying "fix train.py" then sends people the wrong way.
"""

import re

_MISSING = re.compile(r"(?:ModuleNotFoundError|ImportError): No module named '([\w.]+)'")
_NO_CUDA = (
    "Torch not compiled with CUDA enabled",
    "Found no NVIDIA driver",
    "No CUDA GPUs are available",
    "CUDA driver initialization failed",
    "no CUDA-capable device is detected",
    "NVIDIA driver on your system is too old",
)
# Import names whose package is named differently on PyPI.
_PACKAGE = {"yaml": "pyyaml", "sklearn": "scikit-learn", "PIL": "pillow", "cv2": "opencv-python"}


def crash_hint(log_tail, declared=()):
    """One sentence naming the real cause and its fix, or '' when the log shows neither.
    `declared`: the repository's own dependency list (pyproject.toml), named in the fix."""
    text = log_tail or ""
    missing = _MISSING.search(text)
    if missing:
        module = missing.group(1).split(".")[0]
        package = _PACKAGE.get(module, module)
        every = (f"`pip install {' '.join(declared)}`, the dependencies its pyproject.toml declares" if declared
                 else f"`pip install {package}`; for an autoresearch fork, every dependency in its pyproject.toml")
        return (f"the code imports `{module}`, which is not installed where experiments run: install it "
                f"({every} — README, \"Run it on your autoresearch fork\") and rerun.")
    if any(marker in text for marker in _NO_CUDA):
        return ("this train.py needs a CUDA GPU and this machine has none: drop --local to train on Modal "
                "(`runner: modal`, README \"Run on Modal\"), or run `bot run --local` on a machine with an NVIDIA GPU.")
    return ""
