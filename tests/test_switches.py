"""tinynet.switches: every TINYNET_* on/off variable is read one way, and
every TINYNET_* variable with a value to choose refuses one it does not know,
naming the variable. Import-time switches run in a fresh interpreter."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinynet import cli, spinwait
from tinynet.switches import FALSE, TRUE, flag_from_env

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "Yes", " on "])
def test_on_values(value):
    assert flag_from_env("X", False, {"X": value}) is True


@pytest.mark.parametrize("value", ["0", "false", "False", "NO", "off\n"])
def test_off_values(value):
    assert flag_from_env("X", True, {"X": value}) is False


@pytest.mark.parametrize("env", [{}, {"X": ""}, {"X": "  "}])
def test_unset_or_empty_keeps_the_default(env):
    assert flag_from_env("X", True, env) is True
    assert flag_from_env("X", False, env) is False


@pytest.mark.parametrize("value", ["2", "enabled", "y", "-1", "truee"])
def test_other_values_name_the_variable_and_the_value(value):
    with pytest.raises(ValueError) as info:
        flag_from_env("TINYNET_SOMETHING", True, {"TINYNET_SOMETHING": value})
    message = str(info.value)
    assert message.startswith("TINYNET_SOMETHING: ") and repr(value) in message
    assert all(word in message for word in TRUE + FALSE)


def _python(code, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TINYNET_")}
    clean.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=clean,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("value, expected", [("false", "False"), ("off", "False"),
                                             ("0", "False"), ("yes", "True"), ("", "True")])
def test_adaptive_threads_switch(value, expected):
    # "false" left adaptive threads on: only "0" counted as off
    out = _python("from tinynet.kernels import config; print(config.ADAPTIVE_THREADS)",
                  TINYNET_ADAPTIVE_THREADS=value)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [expected]


@pytest.mark.parametrize("variable, value", [("TINYNET_ADAPTIVE_THREADS", "maybe"),
                                             ("TINYNET_SHORT_SPIN", "nope"),
                                             ("TINYNET_BACKEND", "cuda"),
                                             ("TINYNET_GEMM", "mkl")])
def test_an_unknown_value_stops_the_import_with_the_variable_named(variable, value):
    out = _python("import tinynet.kernels", **{variable: value})
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "ValueError" in last and variable in last and repr(value) in last


def test_short_spin_switch_in_this_process_and_for_children(monkeypatch):
    monkeypatch.setenv(spinwait.SWITCH, "FALSE")
    assert not spinwait.enabled()
    env = spinwait.child_environment({spinwait.SWITCH: "no"})
    assert "OPENBLAS_THREAD_TIMEOUT" not in env
    env = spinwait.child_environment({spinwait.SWITCH: "yes"})
    assert env["OPENBLAS_THREAD_TIMEOUT"] == str(spinwait.BLAS_TIMEOUT)
    with pytest.raises(ValueError, match="TINYNET_SHORT_SPIN: .*'2'"):
        spinwait.child_environment({spinwait.SWITCH: "2"})


def test_offline_switch_off_means_downloads_allowed(monkeypatch, capsys):
    # TINYNET_OFFLINE=0 used to count as set (offline)
    monkeypatch.setenv("TINYNET_OFFLINE", "0")
    monkeypatch.setenv("TINYNET_DATA", str(REPO / "no-such-folder"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(REPO / "no-such-folder"))
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "TINYNET_OFFLINE is set" not in out


def test_a_bad_debug_switch_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setenv("TINYNET_DEBUG", "verbose")
    assert cli.main(["info"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinynet: error: TINYNET_DEBUG: ") and "'verbose'" in err
