"""Smoke tests of the benchmark infrastructure and of each ``--quick`` benchmark."""

import argparse
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import report
from benchmarks.__main__ import available, main
from tinynet.kernels import NUMBA_ENABLED

REPO = Path(__file__).resolve().parents[1]


def test_markdown_table_formats_cells():
    table = report.markdown_table(["a", "b"], [[1, 2.5], [None, 12345.6]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2.5 |", "| - | 12.3k |"]


def test_measure_returns_per_call_median():
    calls = []
    result = report.measure(lambda: calls.append(1), repeats=3, warmup=2, number=5)
    assert len(calls) == 2 + 3 * 5
    assert result["number"] == 5 and len(result["times"]) == 3
    assert result["min"] <= result["median"]


def test_write_report_writes_json_and_markdown(tmp_path):
    paths = report.write_report("demo", {"value": 1.5}, "# Demo", out_dir=tmp_path,
                                command="python -m benchmarks demo")
    assert [p.name for p in paths] == ["demo.json", "demo.md"]
    payload = json.loads((tmp_path / "demo.json").read_text())
    assert payload["results"] == {"value": 1.5}
    assert payload["machine"]["cores"] >= 1 and "blas" in payload["machine"]
    assert payload["quick"] is False and payload["command"] == "python -m benchmarks demo"
    text = (tmp_path / "demo.md").read_text()
    assert text.startswith("# Demo") and report.QUICK_NOTE not in text
    # how it was made: the command and the date (UTC, the JSON's time) before the machine
    day, clock = payload["machine"]["time_utc"].rstrip("Z").split("T")
    assert f"\n\nCommand: `python -m benchmarks demo`\n\nDate: {day} {clock[:5]} UTC\n\n" \
           "Machine: " in text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


class PNGFigure:
    """What write_report asks of a matplotlib figure: savefig into a file."""

    def savefig(self, f, **kwargs):
        f.write(b"\x89PNG new")


def test_a_report_lands_as_one_set_with_its_json_renamed_last(tmp_path, monkeypatch):
    from tinynet import atomic
    renamed = []
    real_replace = os.replace
    monkeypatch.setattr(atomic.os, "replace",
                        lambda src, dst: (renamed.append(Path(dst).name), real_replace(src, dst)))
    paths = report.write_report("demo", {"value": 1}, "# Demo", figure=PNGFigure(),
                                out_dir=tmp_path)
    assert [p.name for p in paths] == ["demo.json", "demo.md", "demo.png"]
    assert renamed == ["demo.png", "demo.md", "demo.json"]
    assert (tmp_path / "demo.png").read_bytes() == b"\x89PNG new"


def test_a_report_without_a_figure_removes_an_earlier_runs(tmp_path):
    report.write_report("demo", {"value": 1}, "# Old", figure=PNGFigure(), out_dir=tmp_path)
    report.write_report("other", {"value": 1}, "# Other", figure=PNGFigure(), out_dir=tmp_path)
    paths = report.write_report("demo", {"value": 2}, "# New", out_dir=tmp_path)
    assert [p.name for p in paths] == ["demo.json", "demo.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "demo.json", "demo.md", "other.json", "other.md", "other.png"]


def test_a_report_without_a_figure_keeps_one_not_known_to_be_stale(tmp_path):
    # it deleted any .png of its name: a re-rendering without matplotlib lost the
    # figure of the very results it wrote again
    results = {"value": float("nan"), "steps": {1: 0.5}}
    report.write_report("demo", results, "# Old", figure=PNGFigure(), out_dir=tmp_path)
    report.write_report("demo", {"steps": {"1": 0.5}, "value": float("nan")}, "# Again",
                        out_dir=tmp_path)  # the same results, as a JSON file gives them back
    assert (tmp_path / "demo.png").read_bytes() == b"\x89PNG new"
    (tmp_path / "demo.json").unlink()  # nothing known of the figure: it stays
    report.write_report("demo", {"value": 2}, "# Other", out_dir=tmp_path)
    assert (tmp_path / "demo.png").exists()
    report.write_report("demo", {"value": 3}, "# Newer", out_dir=tmp_path)  # known stale
    assert not (tmp_path / "demo.png").exists()


@pytest.mark.parametrize("failing", [2, 3])  # the .md's temporary file, the .json's
def test_a_report_failing_midway_leaves_the_previous_report_whole(tmp_path, monkeypatch,
                                                                  failing):
    from tinynet import atomic
    report.write_report("demo", {"value": 1}, "# Old", figure=PNGFigure(), out_dir=tmp_path)
    old = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    created = []
    real_create = atomic._create_temp

    def disk_full_at_the_nth_file(directory, name):
        created.append(name)
        if len(created) == failing:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_create(directory, name)

    monkeypatch.setattr(atomic, "_create_temp", disk_full_at_the_nth_file)
    with pytest.raises(OSError, match="No space left"):
        report.write_report("demo", {"value": 2}, "# New", figure=PNGFigure(), out_dir=tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == old  # no temp file either


def test_a_quick_report_says_so_in_its_markdown_and_json(tmp_path):
    report.write_report("demo", {"value": 1.5}, "# Demo", out_dir=tmp_path, quick=True,
                        command="python -m benchmarks demo --quick")
    payload = json.loads((tmp_path / "demo.json").read_text())
    assert payload["quick"] is True and payload["command"] == "python -m benchmarks demo --quick"
    text = (tmp_path / "demo.md").read_text()
    assert text.startswith("**Quick run: smoke test, numbers not meaningful.**\n\n# Demo")
    assert "Command: `python -m benchmarks demo --quick`" in text and "\nDate: " in text


def test_a_quick_run_writes_outside_the_repository_unless_out_is_given(tmp_path, monkeypatch,
                                                                      capsys):
    assert REPO not in report.QUICK_DIR.resolve().parents
    assert report.output_dir(None, quick=False) == report.RESULTS_DIR
    assert report.output_dir(None, quick=True) == report.QUICK_DIR
    assert report.output_dir(tmp_path, quick=True) == tmp_path
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(report, "QUICK_DIR", tmp_path / "quick")

    def run(argv):
        return report.benchmark_main("demo", "", argv, run=lambda args: {"value": 1},
                                     to_markdown=lambda res: "# Demo")
    assert run(["--quick"]) == 0
    assert (tmp_path / "quick" / "demo.md").exists() and not (tmp_path / "results").exists()
    assert f"wrote {tmp_path / 'quick' / 'demo.json'}" in capsys.readouterr().out
    assert run([]) == 0                                      # a full run: benchmarks/results
    assert (tmp_path / "results" / "demo.json").exists()
    assert run(["--quick", "--out", str(tmp_path / "mine")]) == 0   # or where --out says
    assert (tmp_path / "mine" / "demo.json").exists()
    # a benchmark writing its report itself goes by the same rule
    from benchmarks import mtl
    assert mtl.main(["--quick", "--parts", "synthetic"]) == 0
    assert (tmp_path / "quick" / "mtl.json").exists()
    assert not (tmp_path / "results" / "mtl.json").exists()


@pytest.mark.skipif(not NUMBA_ENABLED, reason="needs Numba")
def test_the_machine_line_gives_the_threading_layer_the_kernels_use():
    """A benchmark whose kernels ran in worker processes (train, startup) has
    not started Numba's pool in its own: the report starts it as tinynet does,
    so the layer is not "not initialised" beside a caption saying "omp"."""
    code = ("from benchmarks import report; info = report.machine_info();"
            "from tinynet.kernels import config;"  # after: nothing started the pool before
            "print(info['threading_layer'], config.threading_layer(), sep='|');"
            "print(report.machine_markdown(info))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    layers, line = proc.stdout.strip().splitlines()[-2:]
    reported, used = layers.split("|")
    assert reported == used and reported != "not initialised"
    assert f"(threading layer: {used})" in line


def test_every_benchmark_is_listed_with_a_complete_sentence(capsys):
    assert main(["--help"]) == 0
    listing = capsys.readouterr().out
    for name in available():
        line = next(line for line in listing.splitlines() if line.split()[:1] == [name])
        assert line.rstrip().endswith("."), line              # not cut mid-sentence


def test_only_modules_with_a_main_are_listed():
    # benchmarks/threads.py (the --blas-threads helper) was listed, and
    # `python -m benchmarks threads` died with an AttributeError
    assert available() == ["fashion", "kernels", "meta", "mtl", "startup", "train",
                           "transfer"]
    assert "threads" not in available() and "report" not in available()


def test_every_listed_benchmark_has_a_main():
    # threads.py (the --blas-threads helper) was listed, and running it was a traceback
    import importlib
    assert "threads" not in available() and "report" not in available()
    for name in available():
        assert callable(getattr(importlib.import_module(f"benchmarks.{name}"), "main", None))


def test_main_lists_and_rejects_unknown(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in available():
        assert name in out
    assert main(["no_such_benchmark"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err


@pytest.mark.parametrize("name", [n for n in ("kernels", "train", "startup")
                                  if n in available()])
def test_quick_benchmark_runs(name, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks", name, "--quick",
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = json.loads((tmp_path / f"{name}.json").read_text())
    assert payload["results"] and payload["quick"] is True
    text = (tmp_path / f"{name}.md").read_text()
    assert text.startswith(report.QUICK_NOTE)
    assert f"Command: `python -m benchmarks {name} --quick`" in text and "\nDate: " in text
    assert "not initialised" not in text


def test_the_cnn_training_benchmark_writes_files_of_its_own_without_sklearn(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "train", "--quick", "--model",
                           "cnn", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (tmp_path / "train.json").exists()
    results = json.loads((tmp_path / "train_cnn.json").read_text())["results"]
    assert results["model"] == "cnn" and results["peers"]["sklearn"] is False
    row = results["batches"]["32"]
    assert row["tinynet_step"] > 0 and "sklearn" not in row
    text = (tmp_path / "train_cnn.md").read_text()
    assert "CNN 28x28 conv32-pool-conv64-pool-128-10" in text and "scikit-learn has no CNN" in text
    assert "(rotating order, no pause)" in text  # --quick waits for no threads to sleep


def test_command_line_gives_the_arguments_without_the_output_directory():
    assert report.command_line("transfer", ["--datasets", "fashion-cnn", "--out", "/tmp/x",
                                            "--seeds", "2"]) == \
        "python -m benchmarks transfer --datasets fashion-cnn --seeds 2"
    assert report.command_line("mtl", ["--out=/tmp/x", "--quick"]) == \
        "python -m benchmarks mtl --quick"
    assert report.command_line("meta", None) == "python -m benchmarks meta"
    # nor what it was allowed to replace: the rerun of a report's command is that run
    assert report.command_line("mtl", ["--overwrite", "--parts", "fashion"]) == \
        "python -m benchmarks mtl --parts fashion"
    assert report.run_settings(argparse.Namespace(out=Path("x"), overwrite=True, seeds=2)) == \
        {"out": "x", "seeds": 2}


class _Ran(Exception):
    """Raised by a benchmark's stubbed work: the run got past its checks."""


#: Per benchmark: arguments of a run, the function of its module that does the
#: work (stubbed to raise _Ran), and the report the run writes.
_GUARDED = {
    "mtl": (["--parts", "synthetic"], "synthetic", "mtl"),  # the subset that replaced mtl.*
    "train": (["--model", "cnn"], "run", "train_cnn"),      # (benchmark_main, file_name)
    "startup": (["--repeats", "2"], "run", "startup"),
    "kernels": (["--repeats", "2"], "run", "kernels"),
    "fashion": (["--peers"], "_run", "fashion"),
    "meta": (["--parts", "speed"], "speed", "meta_speed"),
    "transfer": (["--seeds", "1"], "_measure", "transfer"),
}


def _guarded_run(name, extra, monkeypatch):
    """Run benchmark ``name`` (:data:`_GUARDED`) plus ``extra`` with its work stubbed."""
    import importlib

    from tinynet.kernels import blas
    argv, work, _ = _GUARDED[name]
    module = importlib.import_module(f"benchmarks.{name}")
    monkeypatch.setattr(module, work, lambda *args, **kwargs: (_ for _ in ()).throw(_Ran()))
    monkeypatch.setattr(blas, "set_gemm", lambda engine: None)  # (kernels sets it first)
    return main([name, *argv, *extra])


@pytest.mark.parametrize("name", sorted(_GUARDED))
@pytest.mark.parametrize("held", ["python -m benchmarks {name} --blas-threads 1", None])
def test_a_run_refuses_to_replace_a_report_another_command_made(name, held, tmp_path,
                                                               monkeypatch, capsys):
    # `mtl --parts synthetic` wrote mtl.*, the full run's tables, as the same name does
    # not make the same run: refused before any work, unless the command is the same
    argv, _, report_name = _GUARDED[name]
    path = tmp_path / f"{report_name}.json"
    record = json.dumps({"command": held and held.format(name=name), "results": {}})
    path.write_text(record)
    command = " ".join([f"python -m benchmarks {name}", *argv])
    with pytest.raises(SystemExit) as exit_info:
        _guarded_run(name, ["--out", str(tmp_path)], monkeypatch)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{path} holds " + (f"the report of `{held.format(name=name)}`" if held else
                               "a report that records no command") in err
    assert f"not this run's `{command}`; pass --out DIR to write elsewhere, or --overwrite " \
           f"to replace it" in err
    assert path.read_text() == record and list(tmp_path.iterdir()) == [path]
    with pytest.raises(_Ran):                                    # allowed: it says so
        _guarded_run(name, ["--out", str(tmp_path), "--overwrite"], monkeypatch)
    path.write_text(json.dumps({"command": command, "results": {}}))
    with pytest.raises(_Ran):                                    # the same run, again
        _guarded_run(name, ["--out", str(tmp_path)], monkeypatch)
    with pytest.raises(_Ran):                                    # anywhere else
        _guarded_run(name, ["--out", str(tmp_path / "elsewhere")], monkeypatch)


@pytest.mark.parametrize("held", [
    "python -m benchmarks mtl --lr=3e-3 --parts synthetic",        # = form, order, exponent
    "python -m benchmarks mtl --parts synthetic --lr 0.0030 --syn-lr 2e-3",  # a default named
    "python -m benchmarks mtl --par synthetic --lr .003"])         # an abbreviation
def test_a_run_may_replace_the_report_of_its_own_command_however_spelt(held, tmp_path,
                                                                       monkeypatch, capsys):
    # the commands were compared as text: `--lr 3e-3` was not the run of `--lr 0.003`
    (tmp_path / "mtl_lr0.003.json").write_text(json.dumps({"command": held, "results": {}}))
    with pytest.raises(_Ran):
        _guarded_run("mtl", ["--lr", "0.003", "--out", str(tmp_path)], monkeypatch)


@pytest.mark.parametrize("held", [
    "python -m benchmarks mtl --parts synthetic --lr 3e-4",           # another number
    "python -m benchmarks mtl --parts synthetic --lr 3e-3 --quick",   # another option
    "python -m benchmarks mtl --parts synthetic --lr 3e-3 --no-such-option",  # no run's
    "python -m benchmarks meta --parts synthetic --lr 3e-3",          # another benchmark's
    "python -m benchmarks mtl --parts synthetic --lr 3e-3 --help"])
def test_a_run_refuses_the_report_of_other_settings_however_spelt(held, tmp_path,
                                                                 monkeypatch, capsys):
    (tmp_path / "mtl_lr0.003.json").write_text(json.dumps({"command": held, "results": {}}))
    with pytest.raises(SystemExit) as exit_info:
        _guarded_run("mtl", ["--lr", "0.003", "--out", str(tmp_path)], monkeypatch)
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    # the held command read quietly: one usage error, this run's
    assert out == "" and err.count("usage:") == 1
    assert f"holds the report of `{held}`, not this run's `python -m benchmarks mtl " \
           f"--parts synthetic --lr 0.003`" in err


def test_a_quick_run_is_held_to_the_same_rule_where_it_writes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "QUICK_DIR", tmp_path / "quick")
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path / "results")
    for where in ("quick", "results"):
        (tmp_path / where).mkdir()
        (tmp_path / where / "mtl.json").write_text('{"command": "python -m benchmarks mtl"}')
    with pytest.raises(SystemExit):
        _guarded_run("mtl", ["--quick"], monkeypatch)
    assert f"{tmp_path / 'quick' / 'mtl.json'} holds the report of `python -m benchmarks " \
           f"mtl`, not this run's `python -m benchmarks mtl --parts synthetic --quick`" in \
        capsys.readouterr().err
    (tmp_path / "quick" / "mtl.json").unlink()
    with pytest.raises(_Ran):  # the full run's report is not where a quick run writes
        _guarded_run("mtl", ["--quick"], monkeypatch)


def test_transfer_re_rendered_from_json_is_the_run_it_reads(tmp_path, capsys):
    # the command its report records is that run's: so is the one compared
    import shutil
    (tmp_path / "out").mkdir()
    shutil.copy(REPO / "benchmarks" / "results" / "transfer.json", tmp_path)
    held = json.loads((tmp_path / "transfer.json").read_text())["command"]
    (tmp_path / "out" / "transfer.json").write_text('{"command": "python -m benchmarks '
                                                    'transfer --seeds 1"}')
    with pytest.raises(SystemExit) as exit_info:
        main(["transfer", "--from-json", str(tmp_path / "transfer.json"),
              "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert f"not this run's `{held}`" in capsys.readouterr().err


def test_transfer_from_a_quick_runs_json_checks_the_quick_directory(tmp_path, monkeypatch,
                                                                     capsys):
    # without --out the report goes where the run it reads went (QUICK_DIR for a quick
    # one), but the directory checked was RESULTS_DIR: args.quick is False
    import shutil
    shutil.copy(REPO / "benchmarks" / "results" / "transfer.json", tmp_path / "t.json")
    payload = json.loads((tmp_path / "t.json").read_text())
    payload["command"], payload["quick"] = "python -m benchmarks transfer --quick", True
    for res in payload["results"].values():
        res["command"] = payload["command"]
    (tmp_path / "t.json").write_text(json.dumps(payload))
    (tmp_path / "results").write_text("a file, not a directory")
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(report, "QUICK_DIR", tmp_path / "quick")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # no figure: faster
    assert main(["transfer", "--from-json", str(tmp_path / "t.json")]) == 0
    assert f"wrote {tmp_path / 'quick' / 'transfer.json'}" in capsys.readouterr().out
    shutil.rmtree(tmp_path / "quick")
    (tmp_path / "quick").write_text("a file, not a directory")
    (tmp_path / "results").unlink()
    with pytest.raises(SystemExit) as exit_info:  # and the quick directory is the one checked
        main(["transfer", "--from-json", str(tmp_path / "t.json")])
    assert exit_info.value.code == 2
    assert f"cannot write the report into {tmp_path / 'quick'}: {tmp_path / 'quick'} exists " \
           f"and is not a directory" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_the_meta_table_records_the_parts_it_was_run_with(tmp_path):
    from benchmarks import meta
    assert meta.main(["--quick", "--parts", "sinusoid", "--iterations", "2", "--test-tasks",
                      "2", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "meta_sinusoid.md").read_text()
    assert "Command: `python -m benchmarks meta --quick --parts sinusoid --iterations 2 " \
           "--test-tasks 2`" in text


def test_a_meta_run_of_some_parts_leaves_the_full_runs_files_alone(tmp_path):
    # every run wrote meta.*, a --parts subset over the full run's tables, and
    # (with no curves to plot) deleted its meta.png
    from benchmarks import meta
    for name in ("meta.json", "meta.md", "meta.png"):
        (tmp_path / name).write_text("full run")
    assert meta.main(["--quick", "--parts", "fewshot", "sinusoid", "--iterations", "2",
                      "--fewshot-iterations", "2", "--test-tasks", "2",
                      "--out", str(tmp_path)]) == 0
    assert all((tmp_path / name).read_text() == "full run"
               for name in ("meta.json", "meta.md", "meta.png"))
    assert json.loads((tmp_path / "meta_sinusoid_fewshot.json").read_text())["results"][
        "sinusoid"]
    names = {tuple(parts): meta._file_name(meta.argparse.Namespace(parts=parts))
             for parts in (["speed"], ["fewshot", "speed"], ["fewshot", "sinusoid", "speed"],
                           ["speed", "speed"])}
    assert names == {("speed",): "meta_speed", ("fewshot", "speed"): "meta_speed_fewshot",
                     ("fewshot", "sinusoid", "speed"): "meta", ("speed", "speed"): "meta_speed"}
    assert (REPO / "benchmarks" / "results" / "meta_speed.md").exists()  # as README says


def test_runs_on_other_thread_counts_and_models_write_files_of_their_own():
    from argparse import Namespace

    from benchmarks import kernels, train
    assert kernels._file_name(Namespace(threads=None)) == "kernels"
    assert kernels._file_name(Namespace(threads=1)) == "kernels_1thread"
    names = {(model, n): train._file_name(Namespace(model=model, threads=n))
             for model in ("mlp", "cnn") for n in (1, 2)}
    assert names == {("mlp", 1): "train_1thread", ("mlp", 2): "train",
                     ("cnn", 1): "train_cnn_1thread", ("cnn", 2): "train_cnn"}


def test_mtl_settings_write_files_of_their_own():
    from benchmarks import mtl
    assert mtl._file_name(mtl.build_parser().parse_args([])) == "mtl"
    args = mtl.build_parser().parse_args(
        ["--trunk", "conv", "--lr-schedule", "cosine", "--weight-decay", "0.001", "--lr",
         "0.003", "--batch-size", "32", "--validation"])
    assert mtl._file_name(args) == "mtl_conv_cosine_wd0.001_lr0.003_batch32_validation"
    # the number of training pairs too, unless it is the full run's default
    args.n_train = 3000
    assert mtl._file_name(args) == "mtl_conv_cosine_wd0.001_lr0.003_batch32_n3000_validation"
    args.n_train = mtl.DEFAULT_N_TRAIN
    assert mtl._file_name(args) == "mtl_conv_cosine_wd0.001_lr0.003_batch32_validation"
    # a --quick run keeps its plain name whatever its (meaningless) size
    quick = mtl.build_parser().parse_args(["--quick", "--n-train", "300", "--dropout", "0.3"])
    assert mtl._file_name(quick) == "mtl_dropout0.3"


@pytest.mark.parametrize("name", ["mtl", "meta"])
def test_blas_threads_without_threadpoolctl_is_a_usage_error(name, monkeypatch, tmp_path,
                                                             capsys):
    # without threadpoolctl, --blas-threads 1 was quietly ignored: the run used
    # every BLAS thread and reported CPU times many times too high
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--quick", "--blas-threads", "1", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--blas-threads needs threadpoolctl" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["mtl", "meta"])
@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_blas_threads_must_be_positive(name, value, tmp_path, capsys):
    # --blas-threads was type=int with a check of its own at run time, in other
    # words ("a positive number of threads", and argparse's "invalid int value"
    # for "two"): now the count options' type, refused as they are
    assert f"argument --blas-threads: expected a positive integer, received {value!r}" in (
        _usage_error([name, "--blas-threads", value], tmp_path, capsys))


def test_the_benchmarks_parse_numbers_as_the_tinynet_command_does():
    # report.positive_int and float_in repeated tinynet.cli's number types
    from tinynet import cli
    assert report.positive_int is cli.positive_int
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected a number in \[0, 1\], "
                                                          r"received 'nan'"):
        report.float_in(0, 1)("nan")


def test_importing_the_benchmarks_report_leaves_openblas_wait_alone():
    # report imports tinynet (its number types); tinynet imported before NumPy
    # sets OPENBLAS_THREAD_TIMEOUT, which the startup benchmark's subprocesses
    # and the peers' workers would inherit
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    code = "import os, benchmarks.report; print('OPENBLAS_THREAD_TIMEOUT' in os.environ)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=REPO, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("argv", [
    ["kernels", "--repeats", "0"], ["kernels", "--threads", "-1"],
    ["train", "--repeats", "0"], ["train", "--threads", "0"], ["train", "--batch-sizes", "0"],
    ["train", "--samples", "0"], ["startup", "--repeats", "0"],
    ["fashion", "--epochs", "-1"], ["fashion", "--seeds", "0"], ["transfer", "--seeds", "0"],
    ["mtl", "--seeds", "-1"], ["mtl", "--seeds", "0"], ["mtl", "--epochs", "0"],
    ["mtl", "--hidden", "16", "0"], ["meta", "--iterations", "-5"],
    ["meta", "--test-tasks", "0"], ["kernels", "--repeats", "two"]])
def test_a_count_that_is_not_positive_is_a_usage_error(argv, tmp_path, capsys):
    # these were tracebacks (a worker's ValueError, an empty median, an IndexError),
    # a silent 0 repeats, a train run that hung on its dead worker, or a 0 that
    # `args.x or default` quietly turned into the default
    assert f"expected a positive integer, received {argv[-1]!r}" in _usage_error(
        argv, tmp_path, capsys)


def _usage_error(argv, tmp_path, capsys) -> str:
    """The message of a quick run of ``argv`` that must stop at argparse (exit
    status 2) with nothing written."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--quick", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert not list(tmp_path.iterdir())
    return capsys.readouterr().err


def test_a_failing_train_worker_reports_instead_of_leaving_the_parent_waiting():
    # a worker that raised ended its process while the parent waited on the pipe
    # for ever (the parent held the worker's end open): `train --threads 0` hung
    import multiprocessing

    from benchmarks import train
    parent, child = multiprocessing.Pipe()
    train._worker(child, "tinynet", 32, 64, threads=0)   # set_num_threads(0) fails
    with pytest.raises(RuntimeError, match=r"tinynet worker .* failed:(.|\n)*ValueError"):
        train._reply(parent, "tinynet")
    child.close()
    with pytest.raises(RuntimeError, match="torch worker .* died without a reply"):
        train._reply(parent, "torch")


def test_blas_threads_limits_tinynets_kernels_and_torch_too(monkeypatch):
    # meta's --blas-threads limited BLAS alone: its Numba kernels kept every core
    # while its speed table timed PyTorch on a fixed 2 threads
    import argparse

    import threadpoolctl

    import tinynet.kernels
    from benchmarks import threads
    calls = []
    monkeypatch.setattr(threadpoolctl, "threadpool_limits",
                        lambda n, user_api: calls.append(("blas", n, user_api)))
    monkeypatch.setattr(tinynet.kernels, "set_num_threads", lambda n: calls.append(("tinynet", n)))
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(("torch", n)))
    threads.limit_blas_threads(1, argparse.ArgumentParser())
    assert calls == [("blas", 1, "blas"), ("tinynet", 1), ("torch", 1)]


def test_the_meta_speed_peer_gets_tinynets_threads():
    from benchmarks import meta
    from tinynet.kernels import limit_threads
    with limit_threads(1):
        assert meta.peer_threads() == 1
    from argparse import Namespace
    text = meta.markdown({"speed": {"tinynet": 100.0, "torch_loop": 50.0, "torch_threads": 1}},
                         Namespace(iterations=1, fewshot_iterations=1, test_tasks=1))
    assert "`torch.set_num_threads(1)`, as many threads as tinynet's kernels" in text


def test_the_fashion_report_records_the_peers_it_was_run_with(monkeypatch, tmp_path):
    # the command was rebuilt from some options and left out --peers: a table without
    # its PyTorch column said it came from a command that runs PyTorch
    from benchmarks import fashion
    seen = []
    monkeypatch.setattr(fashion, "_run", lambda args, config: seen.append(args.command) or 0)
    assert fashion.main(["--quick", "--peers", "--epochs", "1", "--out", str(tmp_path)]) == 0
    assert seen == ["python -m benchmarks fashion --quick --peers --epochs 1"]


@pytest.mark.parametrize("argv, interval", [
    (["mtl", "--correlations", "1", "2"], "[-1, 1]"), (["mtl", "--dropout", "1.5"], "[0, 1)"),
    (["mtl", "--dropout", "1"], "[0, 1)"), (["mtl", "--lr", "-1"], "(0, inf)"),
    (["mtl", "--syn-lr", "0"], "(0, inf)"), (["mtl", "--weight-decay", "-1"], "[0, inf)"),
    (["mtl", "--soft-penalty", "nan"], "[0, inf)"), (["mtl", "--lr", "fast"], "(0, inf)")])
def test_a_number_out_of_its_range_is_a_usage_error(argv, interval, tmp_path, capsys):
    # a ValueError from the model after the synthetic part had run (its results lost),
    # or, for a rate of 0, a run that trains nothing
    assert f"expected a number in {interval}, received {argv[-1]!r}" in _usage_error(
        argv, tmp_path, capsys)


def test_float_in_keeps_the_numbers_inside():
    assert report.float_in(0, 1, open_high=True)("0") == 0.0
    assert report.float_in(-1, 1)("-1") == -1.0 and report.float_in(0)("1e9") == 1e9


@pytest.mark.parametrize("content", [None, "not json", '{"results": {"fashion": {}}}'])
def test_transfer_from_a_missing_or_foreign_json_is_a_usage_error(content, tmp_path, capsys):
    path = tmp_path / "transfer.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["transfer", "--from-json", str(path), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert f"--from-json expected the JSON of an earlier transfer run, could not read {path}" \
        in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["train", "kernels", "fashion"])
def test_threads_below_the_cores_without_threadpoolctl_is_a_usage_error(name, monkeypatch,
                                                                       tmp_path, capsys):
    # train's and kernels' --threads 1 (fashion's too) went on without a BLAS limit:
    # tinynet's products on every core, timed against a PyTorch held to one thread
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert "--threads needs threadpoolctl" in _usage_error([name, "--threads", "1"], tmp_path,
                                                            capsys)


def test_train_needs_one_full_batch(tmp_path, capsys):
    # fewer samples than the batch size timed empty epochs: 0 samples/s for every framework
    with pytest.raises(SystemExit) as exit_info:   # a full run: --quick sets its own sizes
        main(["train", "--samples", "100", "--batch-sizes", "32", "128", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and not list(tmp_path.iterdir())
    assert "--samples expected at least the largest batch size (128)" in capsys.readouterr().err


def test_train_counts_the_samples_each_runner_trains():
    # fit trains the last partial batch too; its rate was counted on the full batches
    from benchmarks import train
    times = {"tinynet_step": [2.0, 1.0, 9.0], "tinynet_fit": [1.0, 1.0, 2.0], "torch": [4.0]}
    assert train.throughputs(times, 1000, 128) == {"tinynet_step": 448.0, "tinynet_fit": 1000.0,
                                                   "torch": 224.0}


def test_the_meta_one_thread_ratio_comes_from_tinynet_timed_beside_it():
    # the row divided tinynet's median of 7 repeats, timed earlier beside the 2-thread
    # peers, by the 1-thread loop's median of 3 timed alone
    from argparse import Namespace

    from benchmarks import meta
    speed = {"tinynet": 100.0, "torch_loop": 50.0, "torch_loop_1thread": 40.0,
             "tinynet_beside_1thread": 80.0}
    text = meta.markdown({"speed": speed}, Namespace(iterations=1, fewshot_iterations=1,
                                                     test_tasks=1))
    assert "| PyTorch loop, 1 thread | 40 | 2 |" in text


def test_the_fashion_pytorch_peer_starts_from_tinynets_initial_weights():
    # it used PyTorch's own initialisation while the docstring claimed the same model;
    # untrained (0 epochs), both now predict the same classes from the same weights
    pytest.importorskip("torch")
    from benchmarks import fashion
    import tinynet as tn
    (x, y), (xt, yt) = tn.data.load_digits()
    data = ((x[:50] / np.float32(16), y[:50]), (xt[:200] / np.float32(16), yt[:200]))
    config = {**fashion.QUICK, "epochs": 0, "threads": 1}
    tiny, torch = (fashion.train_tinynet(config, data, 3)[0],
                   fashion.train_torch(config, data, 3)[0])
    assert tiny == torch and tiny != fashion.train_tinynet(config, data, 4)[0]


@pytest.fixture
def without_fashion_mnist(tmp_path, monkeypatch):
    """Fashion-MNIST nowhere tinynet looks, and no download."""
    import dataclasses
    from tinynet.data import IDX_DATASETS
    spec = IDX_DATASETS["fashion-mnist"]
    monkeypatch.setitem(IDX_DATASETS, "fashion-mnist",
                        dataclasses.replace(spec, system_dirs=(str(tmp_path / "none"),)))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TINYNET_OFFLINE", "1")
    monkeypatch.delenv("TINYNET_DATA", raising=False)


@pytest.mark.parametrize("argv", [["transfer", "--datasets", "fashion", "fashion-cnn"],
                                  ["fashion", "--peers"]])
def test_a_full_run_without_fashion_mnist_says_so_without_a_traceback(argv, tmp_path, capsys,
                                                                     without_fashion_mnist):
    # transfer raised DatasetNotFoundError out of main (a traceback), as fashion did
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "apt-get install dataset-fashion-mnist" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_the_transfer_benchmark_skips_a_missing_dataset_and_runs_the_others(
        monkeypatch, without_fashion_mnist):
    from argparse import Namespace
    from benchmarks import transfer
    runs = []
    monkeypatch.setattr("tinynet.transfer.experiment.run",
                        lambda *args, **kwargs: runs.append(args) or {"accuracy": {}})
    monkeypatch.setattr(transfer, "margins", lambda *args: {})
    results, skipped = transfer._measure(Namespace(
        quick=False, datasets=["fashion", "fashion-cnn", "digits"], seeds=1, command="c"))
    assert list(results) == ["digits"] and len(runs) == 1
    assert list(skipped) == ["fashion", "fashion-cnn"]
    assert "dataset-fashion-mnist" in skipped["fashion"]


def test_the_meta_speed_caption_gives_the_machines_own_cpu_count():
    # it said "on 2 cores" whatever the machine
    from argparse import Namespace
    from benchmarks import meta
    speed = {"tinynet": 100.0, "torch_loop": 50.0, "torch_threads": 1, "load_average_1min": 3.0}
    text = meta.markdown({"speed": {**speed, "cpus": {"cores": 4, "threads": 8, "usable": 6}}},
                         Namespace(iterations=1, fewshot_iterations=1, test_tasks=1))
    assert "3.0 on 4 cores, 8 threads, 6 usable (" in text and "2 cores" not in text
    old = meta.markdown({"speed": speed}, Namespace(iterations=1, fewshot_iterations=1,
                                                    test_tasks=1))
    assert "3.0 on a machine whose CPU count this file does not record" in old
    counts = report.cpu_counts()
    assert counts["threads"] == os.cpu_count() and 1 <= counts["usable"] <= counts["threads"]
    assert counts["cores"] is None or 1 <= counts["cores"] <= counts["threads"]
    assert report.cpu_text({"cores": None, "threads": 8, "usable": 8}) == "8 threads"


def test_the_meta_speed_part_reports_after_timing(tmp_path, capsys):
    # its progress line rounded every result, the CPU counts (a dict) too: a
    # TypeError after the timing, and no report written
    from benchmarks import meta
    assert meta.main(["--quick", "--parts", "speed", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "'cpus': {'cores'" in out and "'load_average_1min'" in out
    written = [p for p in tmp_path.iterdir() if p.suffix == ".json"]
    assert len(written) == 1
    speed = json.loads(written[0].read_text())["results"]["speed"]
    assert speed["tinynet"] > 0 and speed["cpus"] == report.cpu_counts()
    assert meta._progress({"a": 12.345, "b": 3e-6, "n": 2, "c": {"x": 1}, "f": True}) == \
        {"a": 12.3, "b": "3.0e-06", "n": 2, "c": {"x": 1}, "f": True}


@pytest.mark.parametrize("name", available())
def test_an_out_that_cannot_be_a_directory_is_refused_before_the_run(name, tmp_path, capsys):
    # --out was first used by write_report, after the whole run: an existing file
    # there lost the run's results to a FileExistsError
    taken = tmp_path / "taken"
    taken.write_text("keep")
    for out, problem in ((taken, f"{taken} exists and is not a directory"),
                         (taken / "sub", f"{taken}, on the way to {taken / 'sub'}, is not "
                                         f"a directory")):
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--quick", "--out", str(out)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert f"--out expected a directory to write the report into; {problem}" in err
    assert taken.read_text() == "keep" and sorted(tmp_path.iterdir()) == [taken]


def test_an_out_directory_that_is_not_writable_is_refused(tmp_path, monkeypatch, capsys):
    real_access = os.access
    monkeypatch.setattr(report.os, "access",
                        lambda path, mode: Path(path) != tmp_path and real_access(path, mode))
    with pytest.raises(SystemExit) as exit_info:
        main(["startup", "--quick", "--out", str(tmp_path / "new" / "dir")])
    assert exit_info.value.code == 2
    assert f"{tmp_path} is not writable" in capsys.readouterr().err
    assert report.output_problem(tmp_path / "fine") is not None
    monkeypatch.setattr(report.os, "access", real_access)
    assert report.output_problem(tmp_path / "fine" / "deeper") is None
    assert not (tmp_path / "fine").exists()  # checked, not created


def test_transfer_re_rendered_from_json_keeps_the_runs_date_machine_and_figure(
        tmp_path, monkeypatch, capsys):
    # the re-rendered report gave the re-rendering machine and date, and (without
    # matplotlib) deleted the run's figure, which shows the very same results
    import shutil
    for suffix in ("json", "md", "png"):
        shutil.copy(REPO / "benchmarks" / "results" / f"transfer.{suffix}", tmp_path)
    before = json.loads((tmp_path / "transfer.json").read_text())
    png = (tmp_path / "transfer.png").read_bytes()
    before["machine"]["cpu"] = "a CPU this machine does not have"  # whose line is shown
    (tmp_path / "transfer.json").write_text(json.dumps(before))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails: no figure
    assert main(["transfer", "--from-json", str(tmp_path / "transfer.json"),
                 "--out", str(tmp_path)]) == 0
    after = json.loads((tmp_path / "transfer.json").read_text())
    assert after["machine"] == before["machine"] and after["results"] == before["results"]
    text = (tmp_path / "transfer.md").read_text()
    assert report.machine_markdown(before["machine"]) in text
    assert report.provenance_markdown(before["command"], before["machine"]) in text
    assert (tmp_path / "transfer.png").read_bytes() == png


@pytest.mark.parametrize("argv, message", [
    (["fashion", "--seeds", "2"], "--seeds has no effect in a --quick run, which trains one "
                                  "seed; drop it"),
    (["transfer", "--seeds", "2", "--datasets", "fashion"],
     "--datasets and --seeds have no effect in a --quick run, which trains one seed on the "
     "digits; drop them")])
def test_an_option_a_quick_run_would_ignore_is_refused(argv, message, tmp_path, capsys):
    # fashion --quick --seeds 5 ran one seed without a word, as transfer did
    assert message in _usage_error(argv, tmp_path, capsys)


def test_transfer_from_json_refuses_the_options_of_a_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["transfer", "--from-json", str(tmp_path / "t.json"), "--seeds", "2",
              "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--seeds has no effect with --from-json, which re-renders the run it reads" in \
        capsys.readouterr().err


def test_transfer_from_json_refuses_quick(tmp_path, capsys):
    # --quick was ignored: the report takes its quickness from the run it reads (a full
    # run's re-rendered report is not a quick one's), so the flag could change nothing
    import shutil
    shutil.copy(REPO / "benchmarks" / "results" / "transfer.json", tmp_path / "t.json")
    (tmp_path / "out").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["transfer", "--quick", "--from-json", str(tmp_path / "t.json"),
              "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "--quick has no effect with --from-json, which re-renders the run it reads; " \
           "drop it" in capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []


def _transfer_json(path, command, quick):
    """The committed transfer report saved at ``path`` as made by ``command``,
    with its JSON's ``quick`` set to ``quick`` (the key left out for None)."""
    payload = json.loads((REPO / "benchmarks" / "results" / "transfer.json").read_text())
    payload["command"] = command
    for res in payload["results"].values():
        res["command"] = command
    payload.pop("quick", None)
    if quick is not None:
        payload["quick"] = quick
    path.write_text(json.dumps(payload))


@pytest.mark.parametrize("command, recorded, quick", [
    ("python -m benchmarks transfer --qui", True, True),     # abbreviated: read as full
    ("python -m benchmarks transfer --qui", None, True),     # no quick key: the command's
    ("python -m benchmarks transfer", True, True),           # the JSON's own key first
    ("python -m benchmarks transfer --quick", False, False),
    ("python -m benchmarks transfer --seeds 1", None, False),
    ("python -m benchmarks transfer --quick --gone 3", None, True)])  # does not parse
def test_transfer_from_json_takes_the_quickness_the_run_had(command, recorded, quick,
                                                            tmp_path, monkeypatch, capsys):
    # "--quick" in command.split(): a recorded --qui (argparse's abbreviation) was a full run
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(report, "QUICK_DIR", tmp_path / "quick")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # no figure: faster
    _transfer_json(tmp_path / "t.json", command, recorded)
    assert main(["transfer", "--from-json", str(tmp_path / "t.json")]) == 0
    where = tmp_path / ("quick" if quick else "results")
    assert f"wrote {where / 'transfer.json'}" in capsys.readouterr().out
    assert json.loads((where / "transfer.json").read_text())["quick"] is quick
    assert (where / "transfer.md").read_text().startswith(report.QUICK_NOTE) is quick


@pytest.mark.parametrize("command, quick, empty, message", [
    ("python -m benchmarks transfer", "yes", False,
     "expected 'quick' as true or false, received 'yes'"),
    (None, None, False, "expected 'command' as text, received None"),
    ("python -m benchmarks transfer", None, True,
     "expected the results of at least one dataset, received none")])
def test_transfer_from_json_refuses_a_json_it_cannot_take_the_run_from(
        command, quick, empty, message, tmp_path, capsys):
    # (a command of null was an AttributeError's traceback, no results a StopIteration's)
    _transfer_json(tmp_path / "t.json", command, quick)
    if empty:
        payload = json.loads((tmp_path / "t.json").read_text())
        (tmp_path / "t.json").write_text(json.dumps({**payload, "results": {}}))
    (tmp_path / "out").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["transfer", "--from-json", str(tmp_path / "t.json"),
              "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert f"could not read {tmp_path / 't.json'}: ValueError: {message}" in \
        capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []


def _labelled_parser():
    """A benchmark's parser with an option whose value may hold a space."""
    parser = report.add_common_args(argparse.ArgumentParser(prog="python -m benchmarks toy"))
    parser.add_argument("--label", default="none")
    parser.add_argument("--n", type=int, default=1)
    return parser


@pytest.mark.parametrize("argv, respelt", [
    (["--label", "two words", "--n", "3"], ["--n=3", "--label=two words"]),
    (["--label", "it's \"quoted\"", "--n=3"], ["--n", "3", "--label", "it's \"quoted\""]),
    (["--label", "", "--n", "3"], ["--n", "3", "--label="]),
    (["--label=a  b"], ["--label", "a  b", "--n", "1"])])
def test_a_recorded_command_reads_back_as_the_arguments_it_was_given(argv, respelt):
    # joined with spaces, "two words" came back as two arguments (and the command as
    # one that does not parse); the arguments are quoted as a shell reads them
    parser = _labelled_parser()
    command = report.command_line("toy", [*argv, "--out", "a dir", "--overwrite"])
    assert report.command_words(command) == ["python", "-m", "benchmarks", "toy", *argv]
    settings = report.command_settings(parser, command)
    expected = vars(parser.parse_args(argv))
    assert settings == {k: v for k, v in expected.items() if k not in ("out", "overwrite")}
    assert report.same_run(parser, command, report.command_line("toy", respelt))


def test_a_command_of_plain_words_is_written_and_read_as_before():
    # the committed reports' commands: nothing to quote, the same text
    argv = ["--parts", "fashion", "--lr", "3e-3", "--hidden", "1024", "512",
            "--correlations", "-0.5", "0.9"]
    assert report.command_line("mtl", argv) == "python -m benchmarks mtl " + " ".join(argv)
    for path in (REPO / "benchmarks" / "results").glob("*.json"):
        command = json.loads(path.read_text()).get("command")
        if command:
            assert report.command_words(command) == command.split()


def test_a_command_recorded_unquoted_is_still_read():
    # written before the quoting: a lone quote character is not an unclosed quotation
    parser = _labelled_parser()
    held = "python -m benchmarks toy --label it's --n 3"
    assert report.command_words(held) == held.split()
    assert report.same_run(parser, held, report.command_line("toy", ["--n=3", "--label",
                                                                     "it's"]))


def test_the_guard_takes_a_report_whose_command_has_a_spaced_argument_for_its_own(
        tmp_path, capsys):
    # unquoted, the held command did not parse, and the guard compared texts: the same
    # run spelt otherwise was refused
    parser = _labelled_parser()
    held = report.command_line("toy", ["--label", "two words", "--n", "3"])
    (tmp_path / "toy.json").write_text(json.dumps({"command": held}))
    argv = ["--n=3", "--label", "two words", "--out", str(tmp_path)]
    report.refuse_to_replace(parser, parser.parse_args(argv), "toy",
                             report.command_line("toy", argv))
    argv = ["--n=3", "--label", "two", "--out", str(tmp_path)]  # another run: refused
    with pytest.raises(SystemExit):
        report.refuse_to_replace(parser, parser.parse_args(argv), "toy",
                                 report.command_line("toy", argv))
    assert f"holds the report of `{held}`" in capsys.readouterr().err


def test_a_default_given_after_parsing_is_the_same_run_as_spelt_out(tmp_path, monkeypatch):
    # fashion's --seeds is None until main makes it 3: `fashion` and `fashion --seeds 3`
    # were two runs to the guard
    from benchmarks import fashion
    held = report.command_line("fashion", [])
    (tmp_path / "fashion.json").write_text(json.dumps({"command": held}))

    class Ran(Exception):
        pass

    original = report.refuse_to_replace

    def guarded(parser, args, name, command, quick=None):
        original(parser, args, name, command, quick)
        raise Ran

    monkeypatch.setattr(report, "refuse_to_replace", guarded)
    monkeypatch.setattr(fashion, "require_blas_limit", lambda *a: None)
    with pytest.raises(Ran):  # past the guard
        fashion.main(["--seeds", "3", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):  # another run: refused
        fashion.main(["--seeds", "2", "--out", str(tmp_path)])
