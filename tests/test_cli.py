"""The tinynet command, run in-process through ``main([...])``."""

import os
import re
import signal
import subprocess
import sys
import types

import numpy as np
import pytest

import tinynet as tn
from tinynet import cli, demo
from tinynet.cli import main
from tinynet.data import IDX_DATASETS, write_idx

COMMANDS = ["demo", "train", "evaluate", "predict", "compile", "info"]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No real cache, no $TINYNET_DATA, no network."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("TINYNET_DATA", raising=False)
    monkeypatch.delenv("TINYNET_DEBUG", raising=False)
    monkeypatch.setenv("TINYNET_OFFLINE", "1")


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """A small model trained by 'tinynet train digits' (shared: training is the slow part)."""
    path = tmp_path_factory.mktemp("model") / "digits.npz"
    assert main(["train", "digits", "--hidden", "32", "--epochs", "3", "--verbose", "0",
                 "--out", str(path)]) == 0
    return path


def digits_test_set():
    _, (x_test, y_test) = tn.data.load_digits()
    return x_test, y_test


# ----------------------------------------------------------------- help, usage
@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_each_command(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: tinynet {command}")
    assert len(out.splitlines()) > 4


def test_train_help_lists_every_option(capsys):
    main(["train", "--help"])
    out = capsys.readouterr().out
    for option in ("--hidden", "--epochs", "--batch-size", "--lr", "--seed", "--out",
                   "--data-dir", "--dropout", "--batch-norm", "--val-fraction", "fashion-mnist"):
        assert option in out


def test_top_level_help_and_no_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(command in out for command in COMMANDS)
    assert main([]) == 2


@pytest.mark.parametrize("argv, message", [
    (["train", "digits", "--epochs", "0"], "--epochs: expected a positive integer"),
    (["train", "digits", "--hidden", "64,x"], "comma-separated positive layer widths"),
    (["train", "digits", "--lr", "-1"], "--lr: expected a positive number"),
    (["train", "digits", "--dropout", "1.5"], r"--dropout: expected a number in \[0, 1\)"),
    (["train", "digits", "--schedule", "linear"], "invalid choice"),
    (["train"], "required: dataset"),
    (["evaluate", "model.npz"], "required: dataset"),
    (["fit"], "invalid choice"),
    (["demo", "cor"], "unknown demo part 'cor'; did you mean 'core'"),
    # checked with the other arguments, before any data is loaded (they were exit 1, later)
    (["train", "digits", "--activation", "rleu"],
     "--activation: unknown activation 'rleu'; did you mean 'relu'"),
    (["train", "digits", "--optimizer", "adma"],
     "--optimizer: unknown optimizer 'adma'; did you mean 'adam'"),
    (["train", "digits", "--weight-decay", "-1"], "--weight-decay: expected a number >= 0"),
    (["train", "digits", "--weight-decay", "nan"], "--weight-decay: expected a number >= 0"),
])
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.parametrize("argv, command", [
    (["demo", "cor"], "demo"),  # found after parsing: they used the top-level parser
    (["train", "digits", "--data-dir", "."], "train"),
    (["evaluate", "MODEL", "digits", "--data-dir", "."], "evaluate"),
    (["train", "digits", "--epochs", "0"], "train"),  # found by the parser itself
])
def test_usage_errors_show_the_usage_of_their_command(argv, command, digits_model, capsys):
    assert main([str(digits_model) if arg == "MODEL" else arg for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: tinynet {command} ")
    assert f"\ntinynet {command}: error: " in err


def test_python_dash_m_tinynet():
    result = subprocess.run([sys.executable, "-m", "tinynet", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"tinynet {tn.__version__}"


def test_importing_the_main_module_runs_nothing(capsys):
    # 'import tinynet.__main__' (pydoc, documentation tools walking the package)
    # ran the command line and exited
    import importlib
    import sys
    sys.modules.pop("tinynet.__main__", None)
    module = importlib.import_module("tinynet.__main__")
    assert callable(module.run)
    assert capsys.readouterr().out == ""


def test_python_dash_m_tinynet_cli_info():
    # the module's own main guard ran before _gemm_line was defined: NameError
    result = subprocess.run([sys.executable, "-m", "tinynet.cli", "info"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "gemm" in result.stdout


# ------------------------------------------------------------------------ demo
def test_demo_core_prints_a_results_table(capsys):
    assert main(["demo", "core"]) == 0
    out = capsys.readouterr().out
    assert "Epoch 30/30" in out  # the progress output
    row = next(line for line in out.splitlines() if line.startswith("MLP"))
    assert float(row.split()[-1]) > 0.9  # the MLP learns the digits
    assert "test accuracy" in out and "nearest centroid" in out


_WATCH_FITS = """
import sys
import tinynet as tn
from tinynet import demo

def signatures():  # kernel signatures compiled or loaded from the disk cache so far
    count = 0
    for name, module in list(sys.modules.items()):
        if name.startswith("tinynet.kernels"):
            for obj in list(vars(module).values()):
                for kernel in (obj, getattr(obj, "serial", None), getattr(obj, "parallel", None)):
                    overloads = getattr(kernel, "overloads", None)
                    count += len(overloads) if isinstance(overloads, dict) else 0
    return count

fit, added = tn.Sequential.fit, []
def watched(self, *args, **kwargs):
    before = signatures()
    result = fit(self, *args, **kwargs)
    added.append(signatures() - before)
    return result
tn.Sequential.fit = watched
result = demo.run_core(verbose=0)
print(added)
print(result["notes"][1])
"""


@pytest.mark.skipif(not tn.kernels.NUMBA_ENABLED or tn.kernels.get_backend() == "numpy",
                    reason="needs the Numba kernels")
def test_demo_core_times_training_apart_from_kernel_compilation():
    """In a fresh process, the kernels the timed fit needs are compiled (or
    loaded from the disk cache) before it: it is the last fit, and adds no
    kernel signature; the notes give the compile time apart."""
    env = {**os.environ, "TINYNET_ADAPTIVE_THREADS": "0"}  # no switch to serial builds
    proc = subprocess.run([sys.executable, "-c", _WATCH_FITS], capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    added, note = proc.stdout.strip().splitlines()[-2:]
    added = [int(n) for n in added.strip("[]").split(",")]
    assert len(added) == 2 and added[1] == 0
    if tn.kernels.get_backend() == "numba":  # "auto" may run some operations on NumPy
        assert added[0] > 0
    assert re.fullmatch(r"kernels compiled \(or loaded from the disk cache\) before training: "
                        r"\d+\.\d s, not in the train time", note)


def test_demo_tables_align_each_column_one_way():
    text = demo.format_table({"title": "t", "columns": ["class", "samples", "accuracy"],
                              "rows": [["all", 1100, 0.5], ["0 T-shirt/top", 1000, 0.25],
                                       ["9", 100, 1.0], ["x", "-", "0.1 ± 0.02"]]})
    lines = text.splitlines()[2:]
    assert lines == ["class          samples    accuracy",
                     "-------------  -------  ----------",
                     "all              1,100      0.5000",
                     "0 T-shirt/top    1,000      0.2500",
                     "9                  100      1.0000",
                     "x                    -  0.1 ± 0.02"]


def test_demo_missing_part_is_reported_not_a_crash(monkeypatch, capsys):
    monkeypatch.setitem(demo.PARTS, "mtl", ("tinynet.no_such_demo_module",))
    assert main(["demo", "mtl"]) == 1
    assert "not available" in capsys.readouterr().err


def test_demo_runs_a_part_module_by_contract(monkeypatch, capsys):
    module = types.ModuleType("tinynet.fake_demo")
    calls = []

    def run(seed=0, verbose=1):
        calls.append((seed, verbose))
        return {"title": "Fake part", "columns": ["method", "accuracy"],
                "rows": [["a", 0.5], ["bb", 0.25]], "notes": ["a note"]}

    module.run = run
    monkeypatch.setitem(sys.modules, "tinynet.fake_demo", module)
    monkeypatch.setitem(demo.PARTS, "meta", ("tinynet.fake_demo",))
    assert main(["demo", "meta", "--seed", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert calls == [(3, 0)]
    assert "Fake part" in out and "0.2500" in out and "* a note" in out


def test_demo_part_with_a_broken_import_is_an_error(monkeypatch):
    module_name = "tinynet.broken_demo"
    monkeypatch.setitem(demo.PARTS, "meta", (module_name,))

    def fake_import(name):
        raise ModuleNotFoundError("No module named 'scipy'", name="scipy")

    monkeypatch.setattr(demo.importlib, "import_module", fake_import)
    with pytest.raises(ModuleNotFoundError, match="scipy"):
        demo.load_part("meta")


# ---------------------------------------------------- train, evaluate, predict
def test_train_reports_accuracies_and_saves(tmp_path, capsys):
    out_path = tmp_path / "m.npz"
    assert main(["train", "digits", "--hidden", "16", "--epochs", "2", "--verbose", "2",
                 "--batch-norm", "--dropout", "0.1", "--out", str(out_path)]) == 0
    out = capsys.readouterr().out
    assert "Epoch 2/2" in out and "val_accuracy" in out
    assert "validation" in out and "test" in out and f"saved to {out_path}" in out
    model = tn.load(out_path)
    assert model.input_shape == (64,) and model.output_shape == (10,)


def test_every_activation_the_parser_takes_trains_with_batch_norm_too(tmp_path):
    # 'swish' passed the argument check but build_mlp refused it with --batch-norm
    from tinynet.layers.activations import ACTIVATIONS, SiLU
    from tinynet.recipes import build_mlp
    for name in ACTIVATIONS:
        build_mlp(4, (3, 2), 2, activation=name, batch_norm=True)
    model = build_mlp(4, (3, 2), 2, activation="swish", batch_norm=True)
    silus = [layer for layer in model.layers if isinstance(layer, SiLU)]
    assert len(silus) == 2 and silus[0] is not silus[1]


def test_train_on_a_few_samples_splits_off_validation(tmp_path, capsys):
    # the default --val-fraction 0.1 of 5 samples rounded to 0: a ValueError; now
    # scikit-learn's ceil gives 1, drawn at random as the 5 digits are 5 classes
    assert main(["train", "digits", "--limit", "5", "--hidden", "4", "--epochs", "1",
                 "--verbose", "0", "--out", str(tmp_path / "m.npz")]) == 0
    captured = capsys.readouterr()
    assert "a stratified split expected at least 2 samples of every class (one for each " \
           "part), received 1 sample of 5 class(es)" in captured.err
    assert "the validation split is drawn at random, not stratified" in captured.err
    assert re.search(r"validation\s+1\s", captured.out)


def test_train_with_fewer_validation_samples_than_classes_splits_at_random(tmp_path, capsys):
    # 5 validation samples of the 10 digit classes: a stratified split left classes out
    # of validation unsaid (train_val_split now refuses it, as scikit-learn does)
    assert main(["train", "digits", "--limit", "50", "--hidden", "4", "--epochs", "1",
                 "--verbose", "0", "--out", str(tmp_path / "m.npz")]) == 0
    captured = capsys.readouterr()
    assert "a stratified split expected at least 10 validation samples (one of each of the " \
           "10 classes), received 5 of the 50 samples; the validation split is drawn at " \
           "random, not stratified" in captured.err
    assert re.search(r"validation\s+5\s", captured.out)


@pytest.mark.parametrize("limit, fraction, message", [
    ("20", "0.9999", "--val-fraction 0.9999 of 20 training samples (--limit 20) holds out 20 "
                     "of them for validation, leaving 0 to train on: expected at most 0.95 here, "
                     "or 0 for no validation"),
    ("1", "0.1", "--val-fraction 0.1 expected at least 2 training samples (one for each part), "
                 "received 1 (--limit 1): give --val-fraction 0 for no validation"),
])
def test_a_val_fraction_leaving_a_part_empty_is_named_as_the_option(limit, fraction, message,
                                                                    tmp_path, capsys):
    # the error named the library's argument: "received val_size=0.9999 (20 samples)"
    out = tmp_path / "m.npz"
    argv = ["train", "digits", "--limit", limit, "--hidden", "4", "--epochs", "1",
            "--verbose", "0", "--out", str(out)]
    assert main(argv + ["--val-fraction", fraction]) == 2
    assert capsys.readouterr().err.endswith(f"\ntinynet train: error: {message}\n")
    assert not out.exists()
    if limit == "20":  # the largest fraction it names is taken
        assert main(argv + ["--val-fraction", "0.95"]) == 0
        assert re.search(r"validation\s+19\s", capsys.readouterr().out)


def test_the_val_fractions_named_are_the_librarys_rule_not_a_copy(tmp_path, monkeypatch,
                                                                 capsys):
    # the message re-derived train_val_split's ceil rule: another rule (here the
    # count rounded down) would have been named wrongly ("at most 0.95")
    monkeypatch.setattr("tinynet.data.preprocessing._val_count",
                        lambda n_samples, val_size: int(val_size * n_samples))
    assert main(["train", "digits", "--limit", "20", "--val-fraction", "0.01", "--epochs", "1",
                 "--verbose", "0", "--out", str(tmp_path / "m.npz")]) == 2
    assert capsys.readouterr().err.endswith(
        "--val-fraction 0.01 of 20 training samples (--limit 20) holds out 0 of them for "
        "validation, leaving 20 to train on: expected 0.05 to 0.9999 here, or 0 for no "
        "validation\n")


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_data_dir_with_the_embedded_digits_is_a_usage_error(command, digits_model, tmp_path,
                                                           capsys):
    # it was quietly ignored: the digits read no files
    argv = ([command, "Digits"] if command == "train" else [command, str(digits_model),
                                                             "Digits"])
    assert main(argv + ["--data-dir", str(tmp_path),
                        *(["--out", str(tmp_path / "m.npz")] if command == "train" else [])]
                ) == 2
    assert f"--data-dir is where the IDX datasets' files are looked for; 'Digits' is " \
           f"embedded in tinynet and reads no files: drop --data-dir {tmp_path}" in \
        capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()


def test_train_is_reproducible_with_a_seed(tmp_path):
    for name in ("a.npz", "b.npz"):
        assert main(["train", "digits", "--hidden", "8", "--epochs", "1", "--verbose", "0",
                     "--seed", "5", "--out", str(tmp_path / name)]) == 0
    for w_a, w_b in zip(tn.load(tmp_path / "a.npz").get_weights(),
                        tn.load(tmp_path / "b.npz").get_weights()):
        np.testing.assert_array_equal(w_a, w_b)


@pytest.mark.parametrize("optimizer, argv, expected", [
    ("adamw", ["--weight-decay", "0"], 0.0),  # was dropped as falsy: AdamW's own 0.01
    ("adamw", [], 0.01),
    ("adamw", ["--weight-decay", "0.5"], 0.5),
    ("sgd", [], 0.0),
])
def test_weight_decay_is_passed_when_given_zero_included(optimizer, argv, expected, tmp_path):
    out = tmp_path / "m.npz"
    assert main(["train", "digits", "--optimizer", optimizer, *argv, "--epochs", "1",
                 "--limit", "200", "--hidden", "4", "--verbose", "0", "--out", str(out)]) == 0
    assert tn.load(out).optimizer.param_groups[0]["weight_decay"] == expected


def test_evaluate_matches_the_model(digits_model, capsys):
    assert main(["evaluate", str(digits_model), "digits"]) == 0
    out = capsys.readouterr().out
    x_test, y_test = digits_test_set()
    expected = (tn.load(digits_model).predict_classes(x_test / np.float32(16)) == y_test).mean()
    row = next(line for line in out.splitlines() if line.startswith("all"))
    assert row.split() == ["all", "360", f"{expected:.4f}"]
    assert "loss" in out
    # the class labels ("all", then 0-9) all start the line, as left-aligned text
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("class"))
    labels = [line[:5] for line in lines[header + 2:header + 13]]
    assert labels == ["all  "] + [f"{d}    " for d in range(10)]


def test_evaluate_a_model_of_image_shaped_input(tmp_path, capsys):
    # predict reshaped the flat samples to the model's input shape; evaluate refused them
    (x_train, y_train), (x_test, y_test) = tn.data.load_digits()
    model = tn.Sequential([tn.layers.Flatten(input_shape=(8, 8)), tn.layers.Dense(10, seed=0)])
    model.compile("adam", "cross_entropy")
    model.fit(x_train.reshape(-1, 8, 8) / np.float32(16), y_train, epochs=1, verbose=0, seed=0)
    path = model.save(tmp_path / "image.npz")
    assert main(["evaluate", str(path), "digits"]) == 0
    expected = (model.predict_classes(x_test.reshape(-1, 8, 8) / np.float32(16))
                == y_test).mean()
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("all"))
    assert row.split() == ["all", "360", f"{expected:.4f}"]


@pytest.mark.parametrize("reshape", [None, (-1, 8, 8)])
def test_predict_raw_pixels_and_save(digits_model, tmp_path, reshape, capsys):
    x_test, _ = digits_test_set()
    raw = x_test[:7] if reshape is None else x_test[:7].reshape(reshape)
    np.save(tmp_path / "x.npy", raw)
    out_path = tmp_path / "labels.npy"
    assert main(["predict", str(digits_model), str(tmp_path / "x.npy"),
                 "--out", str(out_path)]) == 0
    expected = tn.load(digits_model).predict_classes(x_test[:7] / np.float32(16))
    np.testing.assert_array_equal(np.load(out_path), expected)
    assert "7 predictions (input scaled by 1/16)" in capsys.readouterr().out


def test_predict_float_input_single_sample_and_proba(digits_model, tmp_path):
    x_test, _ = digits_test_set()
    np.save(tmp_path / "one.npy", (x_test[3] / 16).astype(np.float32).reshape(8, 8))
    assert main(["predict", str(digits_model), str(tmp_path / "one.npy"), "--proba",
                 "--out", str(tmp_path / "p.npy")]) == 0
    proba = np.load(tmp_path / "p.npy")
    assert proba.shape == (1, 10) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(), 1.0, rtol=1e-5)
    expected = tn.load(digits_model).predict_proba(x_test[3:4] / np.float32(16))
    np.testing.assert_allclose(proba, expected, rtol=1e-5)


def test_predict_proba_of_a_binary_model_shows_its_labels(tmp_path, capsys):
    # one sigmoid-logit unit: the label is p > 0.5, not the arg-max of one column
    model = tn.Sequential([tn.layers.Dense(1, input_dim=4)])
    model.compile("sgd", loss="binary_cross_entropy")
    model.layers[0].W.value[...] = np.array([[1.0], [0.0], [0.0], [0.0]], np.float32)
    model.save(tmp_path / "binary.npz")
    np.save(tmp_path / "x.npy", np.array([[0.9, 0, 0, 0], [-0.9, 0, 0, 0]], np.float32))
    assert main(["predict", str(tmp_path / "binary.npz"), str(tmp_path / "x.npy"),
                 "--proba", "--out", str(tmp_path / "p.npy")]) == 0
    assert "2 predictions (input scaled by 1/1): 1, 0" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(tmp_path / "p.npy")[:, 0],
                               1 / (1 + np.exp([-0.9, 0.9])), rtol=1e-6)


def test_predict_explicit_scale(digits_model, tmp_path):
    x_test, _ = digits_test_set()
    np.save(tmp_path / "x.npy", x_test[:5].astype(np.float64) * 4)
    assert main(["predict", str(digits_model), str(tmp_path / "x.npy"), "--scale", "64",
                 "--out", str(tmp_path / "y.npy")]) == 0
    expected = tn.load(digits_model).predict_classes(x_test[:5] / np.float32(16))
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)


@pytest.mark.parametrize("content, message", [
    (np.zeros((3, 5)), r"shape \(3, 5\); the model expects samples of shape \(64,\)"),
    (np.array(["a", "b"]), "dtype <U1"),
    (np.array([{}], dtype=object), r"holds Python objects \(dtype object\)"),
])
def test_predict_bad_input_files(digits_model, tmp_path, content, message, capsys):
    path = tmp_path / "bad.npy"
    np.save(path, content, allow_pickle=True)
    assert main(["predict", str(digits_model), str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinynet predict: error:")
    assert re.search(message, err)


def test_predict_and_evaluate_missing_or_foreign_files(digits_model, tmp_path, capsys):
    assert main(["predict", str(digits_model), str(tmp_path / "absent.npy")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "absent.npz"), "digits"]) == 1
    assert "does not exist" in capsys.readouterr().err
    np.save(tmp_path / "plain.npy", np.zeros(3))
    assert main(["evaluate", str(tmp_path / "plain.npy"), "digits"]) == 1
    assert "not a readable tinynet model" in capsys.readouterr().err


@pytest.mark.parametrize("cli, match", [
    ([1], "expected an object, received list"),
    ({"preprocessing": "x"}, "expected preprocessing as"),
    ({"preprocessing": {"scale": 0}}, "expected preprocessing as"),
    ({"preprocessing": {"scale": "16"}}, "expected preprocessing as"),
    ({"preprocessing": {"scale": 16}, "classes": 5}, "expected classes as a list of names"),
])
def test_metadata_train_never_writes_is_one_clear_error(digits_model, tmp_path, cli, match,
                                                        capsys):
    # was an AttributeError or ZeroDivisionError traceback, or 'string indices must be
    # integers'
    path = tn.load(digits_model).save(tmp_path / "odd.npz", metadata={"tinynet_cli": cli})
    np.save(tmp_path / "x.npy", digits_test_set()[0][:3])
    for argv in (["evaluate", path, "digits"], ["predict", path, str(tmp_path / "x.npy")]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "holds metadata 'tinynet_cli' that 'tinynet train' does not write" in err
        assert match in err


def test_a_multi_task_model_file_is_refused_with_a_clear_error(tmp_path, capsys):
    inp = tn.mtl.Input((64,))
    model = tn.mtl.Model(inp, {"a": tn.layers.Dense(10)(inp), "b": tn.layers.Dense(2)(inp)})
    model.save(tmp_path / "mtl.npz")
    np.save(tmp_path / "x.npy", np.zeros((2, 64)))
    assert main(["predict", str(tmp_path / "mtl.npz"), str(tmp_path / "x.npy")]) == 1
    assert "holds a Model (a multi-task model)" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "mtl.npz"), "digits"]) == 1
    assert "expect a single-output classifier" in capsys.readouterr().err


def _not_a_classifier(kind, path):
    """A model file that evaluate and predict must refuse, of 64 inputs (the digits')."""
    L = tn.layers
    if kind == "MAML":  # a sine regressor, as the meta demo trains one (given 64 inputs)
        tn.meta.MAML(tn.Sequential([L.Dense(8, activation="tanh", input_dim=64, seed=0),
                                    L.Dense(1, seed=1)])).save(path)
    elif kind == "ProtoNet":  # an embedding of 10 values: it looked like 10 classes
        tn.meta.ProtoNet(tn.Sequential([L.Dense(10, input_dim=64, seed=0)])).save(path)
    elif kind == "MSE":  # a regressor of 3 values: argmax labels, then an error deep inside
        model = tn.Sequential([L.Dense(8, input_dim=64, seed=0), L.Dense(3, seed=1)])
        model.compile("adam", loss="mse")
        model.save(path)
    else:  # an output per pixel: (8, 8, 2) per sample
        tn.Sequential([L.Conv2D(2, 3, padding="same", input_shape=(8, 8, 1), seed=0)]).save(path)


@pytest.mark.parametrize("kind, message", [
    ("MAML", "holds a meta-learner (MAML), whose model adapts to each task"),
    ("ProtoNet", "holds a meta-learner (ProtoNet), whose model adapts to each task"),
    ("MSE", "holds a model compiled with the loss MSE, not a classifier"),
    ("pixels", "holds a model whose output per sample has shape (8, 8, 2)"),
])
def test_a_model_that_is_no_single_output_classifier_is_refused(kind, message, tmp_path,
                                                                capsys):
    # predict printed labels (and --proba sigmoid "probabilities") of a MAML regressor,
    # evaluate scored a ProtoNet embedding as a 10-class classifier
    path = str(tmp_path / f"{kind}.npz")
    _not_a_classifier(kind, path)
    np.save(tmp_path / "x.npy", digits_test_set()[0][:5])
    for argv in (["predict", path, str(tmp_path / "x.npy")],
                 ["predict", path, str(tmp_path / "x.npy"), "--proba"],
                 ["evaluate", path, "digits"]):
        assert main(argv) == 1
        out, err = capsys.readouterr()
        assert out == "" and message in err
        assert "evaluate and predict expect a single-output classifier (a tinynet." \
               "Sequential compiled with cross_entropy or binary_cross_entropy" in err


@pytest.mark.parametrize("last, loss, after", [
    (None, None, None), ("softmax", None, None), ("softmax", "mse", None),
    ("sigmoid", "mse", None),
    # Dropout passes the probabilities on in predict: refused as an MSE regressor
    # by a first version of the check, which asked the training pairing's rule
    ("softmax", "mse", "dropout"), ("sigmoid", "mse", "dropout"), ("softmax", "mse", "flatten")])
def test_classifiers_saved_from_python_are_taken(last, loss, after, tmp_path, capsys):
    # uncompiled logits, or probabilities (a softmax, or one sigmoid unit, trained on
    # whatever loss): predicted and evaluated; the loss only of a cross-entropy
    units = 1 if last == "sigmoid" else 10
    tail = {None: [], "dropout": [tn.layers.Dropout(0.2)], "flatten": [tn.layers.Flatten()]}
    model = tn.Sequential([tn.layers.Dense(units, activation=last, input_dim=64, seed=0),
                           *tail[after]])
    if loss:
        model.compile("adam", loss=loss)
    path = str(model.save(tmp_path / "m.npz"))
    x_test, y_test = digits_test_set()
    np.save(tmp_path / "x.npy", x_test[:5])
    assert main(["predict", path, str(tmp_path / "x.npy")]) == 0
    expected = ", ".join(map(str, model.predict_classes(x_test[:5] / np.float32(16))))
    assert f"5 predictions (input scaled by 1/16): {expected}" in capsys.readouterr().out
    assert main(["evaluate", path, "digits"]) == 0
    out = capsys.readouterr().out
    accuracy = (model.predict_classes(x_test / np.float32(16)) == y_test).mean()
    row = next(line for line in out.splitlines() if line.startswith("all"))
    assert row.split() == ["all", "360", f"{accuracy:.4f}"] and "loss" not in out


def test_out_must_not_be_a_directory(tmp_path, capsys):
    assert main(["train", "digits", "--out", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err
    assert main(["train", "digits", "--out", str(tmp_path / "missing" / "m.npz")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_out_in_an_unwritable_directory_fails_before_training(tmp_path, capsys, monkeypatch):
    # it trained fully, then failed to save, and the model was lost
    monkeypatch.setattr(cli.os, "access", lambda p, mode: False)
    assert main(["train", "digits", "--out", str(tmp_path / "m.npz")]) == 1
    captured = capsys.readouterr()
    assert "is not writable" in captured.err and "Epoch" not in captured.out


@pytest.mark.parametrize("out, message", [
    (".", "is a directory; give a file path such as labels.npy"),
    ("missing/dir/x.npy", r"directory '.*missing.dir' does not exist"),
])
def test_predict_checks_out_before_predicting(digits_model, tmp_path, out, message, capsys):
    x_test, _ = digits_test_set()
    np.save(tmp_path / "x.npy", x_test[:3])
    assert main(["predict", str(digits_model), str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / out)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no predictions printed before the failure
    assert re.search(message, captured.err) and ".tmp" not in captured.err


@pytest.mark.parametrize("target", ["model", "input", "model link"])
def test_predict_refuses_an_out_that_is_its_model_or_input(digits_model, tmp_path, target,
                                                           capsys):
    # predict m.npz x.npy --out m.npz replaced the model file with the labels
    import shutil
    model = tmp_path / "m.npz"
    shutil.copy(digits_model, model)
    x_test, _ = digits_test_set()
    np.save(tmp_path / "x.npy", x_test[:3])
    (tmp_path / "link.npz").symlink_to(model)
    out = {"model": model, "input": tmp_path / "x.npy", "model link": tmp_path / "link.npz"}
    before = {p: p.read_bytes() for p in (model, tmp_path / "x.npy")}
    assert main(["predict", str(model), str(tmp_path / "x.npy"), "--out",
                 str(out[target])]) == 1
    what, source = (("input file", tmp_path / "x.npy") if target == "input"
                    else ("model file", model))
    assert f"--out {str(out[target])!r} is the {what} {str(source)!r}; writing the output " \
           f"there would replace it: give another path such as labels.npy" in \
        capsys.readouterr().err
    assert {p: p.read_bytes() for p in before} == before


def test_train_refuses_an_out_that_is_a_file_of_its_dataset(tmp_path, capsys):
    write_tiny_idx_set(tmp_path / "tiny")
    images = tmp_path / "tiny" / "train-images-idx3-ubyte.gz"
    before = images.read_bytes()
    assert main(["train", "tiny", "--data-dir", str(tmp_path), "--epochs", "1", "--verbose",
                 "0", "--out", str(images)]) == 1
    captured = capsys.readouterr()
    assert f"--out {str(images)!r} is the dataset file {str(images)!r}" in captured.err
    assert images.read_bytes() == before and "accuracy" not in captured.out


@pytest.mark.parametrize("content, args, message", [
    (lambda x: x * 1000, [], r"values in \[0, 16000\], outside \[0, 16\]; the model was "
                             r"trained on pixels in \[0, 16\] divided by 16"),
    (lambda x: -x, [], r"values in \[-16, 0\], outside \[0, 16\]"),
    (lambda x: x * 4, ["--scale", "32"], r"values in \[0, 64\], outside \[0, 32\]"),
    (lambda x: x.astype(np.float32), [], r"values in \[0, 16\], outside \[0, 1\];.*"
                                         r"give --scale 16 if it holds raw pixels"),
    (lambda x: x[:0], [], r"holds no samples \(an array of shape \(0, 64\)\)"),
])
def test_predict_refuses_input_outside_the_trained_range(digits_model, tmp_path, content,
                                                         args, message, capsys):
    x_test, _ = digits_test_set()
    np.save(tmp_path / "x.npy", content(x_test[:5].astype(np.int64)))
    assert main(["predict", str(digits_model), str(tmp_path / "x.npy"), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinynet predict: error:") and re.search(message, err), err


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("args", [[], ["--scale", "16"]])
def test_predict_refuses_non_finite_input_for_what_it_is(digits_model, tmp_path, bad, args,
                                                         capsys):
    # it was refused as "values in [nan, nan], outside [0, 1]; ... scale the input"
    x = digits_test_set()[0][:5].astype(np.float64) / 16
    x[1, 3] = bad
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(digits_model), str(tmp_path / "x.npy"), *args]) == 1
    assert capsys.readouterr().err == (
        f"tinynet predict: error: predict expected finite values in "
        f"{str(tmp_path / 'x.npy')!r}, received 1 NaN or infinite value(s) in an array of "
        f"shape (5, 64)\n")


def test_predict_names_the_shape_of_the_non_finite_input_as_read(digits_model, tmp_path,
                                                                capsys):
    # a (5, 8, 8) file was said to hold "an array of shape (5, 64)": the check ran
    # on the batch reshaped for the model, not on what the file holds
    x = np.full((5, 8, 8), 0.5)
    x[1, 0, 3] = np.nan
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(digits_model), str(tmp_path / "x.npy")]) == 1
    err = capsys.readouterr().err
    assert err.endswith("received 1 NaN or infinite value(s) in an array of shape "
                        "(5, 8, 8)\n"), err


def write_tiny_idx_set(directory, n_classes=3):
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True)
    for split, n in (("train", 60), ("t10k", 30)):
        labels = np.arange(n, dtype=np.uint8) % n_classes
        images = (labels[:, None, None] * 100 + rng.integers(0, 30, (n, 4, 4))).astype(np.uint8)
        write_idx(directory / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{split}-labels-idx1-ubyte.gz", labels)


def test_train_and_evaluate_an_idx_set_from_data_dir(tmp_path, capsys):
    write_tiny_idx_set(tmp_path / "tiny")
    model_path = tmp_path / "tiny.npz"
    assert main(["train", "tiny", "--data-dir", str(tmp_path), "--hidden", "8", "--epochs",
                 "2", "--verbose", "0", "--val-fraction", "0", "--batch-size", "16",
                 "--out", str(model_path)]) == 0
    assert tn.load(model_path).input_shape == (16,)
    capsys.readouterr()
    assert main(["evaluate", str(model_path), "tiny", "--data-dir", str(tmp_path)]) == 0
    assert "30" in capsys.readouterr().out
    assert main(["evaluate", str(model_path), "digits"]) == 1
    assert "expects 16 input values per sample" in capsys.readouterr().err


def test_a_dataset_of_another_width_is_refused_for_its_width_not_its_range(
        digits_model, tmp_path, capsys):
    # 16 pixels in [0, 255] given to a model of the 64 digits pixels in [0, 16]: evaluate
    # blamed the range ("holds values in [0, 229], outside [0, 16]"), predict the shape
    write_tiny_idx_set(tmp_path / "tiny")
    assert main(["evaluate", str(digits_model), "tiny", "--data-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        "tinynet evaluate: error: the model expects 64 input values per sample, dataset "
        "'tiny' has 16: was it trained on another dataset?\n")
    np.save(tmp_path / "x.npy", tn.data.read_idx(tmp_path / "tiny" / "t10k-images-idx3-ubyte.gz"))
    assert main(["predict", str(digits_model), str(tmp_path / "x.npy")]) == 1
    assert "the model expects samples of shape (64,)" in capsys.readouterr().err


def test_train_refuses_test_images_of_another_shape_before_training(tmp_path, capsys):
    # 5x5 test images beside 6x6 training ones: "20 test samples of 36 features", every
    # epoch trained, then a failure in the test report and no model
    rng = np.random.default_rng(0)
    (tmp_path / "testshape").mkdir()
    for split, n, side in (("train", 100, 6), ("t10k", 20, 5)):
        write_idx(tmp_path / "testshape" / f"{split}-images-idx3-ubyte",
                  rng.integers(0, 256, (n, side, side), dtype=np.uint8))
        write_idx(tmp_path / "testshape" / f"{split}-labels-idx1-ubyte",
                  np.arange(n, dtype=np.uint8) % 2)
    out_path = tmp_path / "ts.npz"
    assert main(["train", "testshape", "--data-dir", str(tmp_path), "--epochs", "3",
                 "--hidden", "8", "--out", str(out_path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and not out_path.exists()
    test_file, train_file = (tmp_path / "testshape" / f"{stem}-images-idx3-ubyte"
                             for stem in ("t10k", "train"))
    assert err == (f"tinynet train: error: testshape: test images {test_file} of shape "
                   f"(20, 5, 5) do not match training images {train_file} of shape "
                   f"(100, 6, 6) (expected samples of one shape, (n, 6, 6) in both)\n")


def write_wide_idx_set(directory, brightest_test=None, brightest_train=None):
    """int16 pixels of 18..199 (an 8-bit depth: scale 255); a pixel of each split can be
    brighter."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 60), ("t10k", 20)):
        labels = np.arange(n, dtype=np.uint8) % 2
        images = (labels[:, None, None] * 100 + rng.integers(18, 100, (n, 3, 3)))
        images[0, 0, 0] = 18
        brightest = brightest_test if split == "t10k" else brightest_train
        if brightest is not None:
            images[1, 2, 2] = brightest
        write_idx(directory / f"{split}-images-idx3-ubyte", images.astype(np.int16))
        write_idx(directory / f"{split}-labels-idx1-ubyte", labels)
    return directory / "t10k-images-idx3-ubyte"


def test_train_refuses_test_pixels_beyond_the_training_scale_before_training(tmp_path,
                                                                            capsys):
    # test pixels up to 3991 beside training pixels of an 8-bit depth: train trained,
    # then reported a test accuracy on inputs scaled up to 15.7
    test_file = write_wide_idx_set(tmp_path / "wide", brightest_test=3991)
    out_path = tmp_path / "m.npz"
    assert main(["train", "wide", "--data-dir", str(tmp_path), "--epochs", "1", "--hidden",
                 "4", "--out", str(out_path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and not out_path.exists()
    assert err.startswith(f"tinynet train: error: dataset 'wide': its test images "
                          f"({test_file}) hold values in [18, 3991], outside [0, 255]; its "
                          f"training images' pixels are divided by 255"), err


@pytest.mark.parametrize("brightest_train", [None, 3991])  # 3991: this dataset's scale 4095
def test_evaluate_refuses_pixels_beyond_the_trained_range_as_predict_does(
        brightest_train, tmp_path, capsys):
    test_file = write_wide_idx_set(tmp_path / "wide")
    model_path = tmp_path / "m.npz"
    assert main(["train", "wide", "--data-dir", str(tmp_path), "--epochs", "1", "--hidden",
                 "4", "--verbose", "0", "--out", str(model_path)]) == 0
    write_wide_idx_set(tmp_path / "brighter", 3991, brightest_train)
    np.save(tmp_path / "x.npy", tn.data.read_idx(tmp_path / "brighter" / test_file.name))
    capsys.readouterr()
    assert main(["predict", str(model_path), str(tmp_path / "x.npy")]) == 1
    assert "holds values in [18, 3991], outside [0, 255]" in capsys.readouterr().err
    # evaluate scored them (an accuracy on inputs up to 15.7) where predict refused
    assert main(["evaluate", str(model_path), "brighter", "--data-dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == (
        f"tinynet evaluate: error: dataset 'brighter': its test images "
        f"({tmp_path / 'brighter' / test_file.name}) hold values in [18, 3991], outside "
        f"[0, 255]; the model was trained on pixels in [0, 255] divided by 255 (to [0, 1]): "
        f"score it on images of that range\n")
    # its training images: in range, or beyond it too
    assert main(["evaluate", str(model_path), "brighter", "--data-dir", str(tmp_path),
                 "--split", "train"]) == (0 if brightest_train is None else 1)
    assert ("training images" in capsys.readouterr().err) == (brightest_train is not None)


@pytest.mark.parametrize("dtype, step, brightest, scale", [(np.int16, 2000, 4095, 4095.0),
                                                          (np.int8, 64, 127, 127.0)])
def test_predict_takes_a_test_pixel_brighter_than_any_training_pixel_of_its_depth(
        tmp_path, capsys, dtype, step, brightest, scale):
    # 12-bit pixels stored as int16: the scale was the training maximum (3899), and
    # predict refused the dataset's own test image with a pixel of 4095. A signed
    # byte holds 0..127: divided by 255 its pixels spanned [0, 0.5]; the rule is the
    # bit depth's maximum, never above the dtype's (np.iinfo(int8).max)
    rng = np.random.default_rng(0)
    (tmp_path / "deep").mkdir()
    for split, n in (("train", 40), ("t10k", 10)):
        labels = np.arange(n, dtype=np.uint8) % 2
        images = labels[:, None, None].astype(np.int64) * step + rng.integers(
            0, step - 100 if step > 100 else step - 1, (n, 3, 3))
        if split == "t10k":
            images[0, 0, 0] = brightest
        write_idx(tmp_path / "deep" / f"{split}-images-idx3-ubyte", images.astype(dtype))
        write_idx(tmp_path / "deep" / f"{split}-labels-idx1-ubyte", labels)
    model_path = tmp_path / "deep.npz"
    assert main(["train", "deep", "--data-dir", str(tmp_path), "--hidden", "4", "--epochs",
                 "1", "--verbose", "0", "--val-fraction", "0", "--out", str(model_path)]) == 0
    assert tn.load(model_path).metadata["tinynet_cli"]["preprocessing"]["scale"] == scale
    from tinynet.data import read_idx
    np.save(tmp_path / "x.npy", read_idx(tmp_path / "deep" / "t10k-images-idx3-ubyte"))
    capsys.readouterr()
    assert main(["predict", str(model_path), str(tmp_path / "x.npy")]) == 0, \
        capsys.readouterr().err
    assert f"input scaled by 1/{scale:g}" in capsys.readouterr().out


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch,
                                                                 capsys):
    from dataclasses import replace
    spec = replace(IDX_DATASETS["fashion-mnist"], system_dirs=(str(tmp_path / "nowhere"),))
    monkeypatch.setitem(IDX_DATASETS, "fashion-mnist", spec)
    assert main(["train", "fashion-mnist", "--data-dir", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinynet train: error: Fashion-MNIST not found")
    assert "apt-get install dataset-fashion-mnist" in err and str(tmp_path / "empty") in err
    assert main(["train", "kmnist", "--no-download"]) == 1
    assert "No download address" in capsys.readouterr().err


# ------------------------------------------------------------- compile, info
def test_compile_calls_warm_up(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(tn.kernels, "warm_up", lambda dtypes: calls.append(dtypes),
                        raising=False)
    assert main(["compile"]) == 0
    assert main(["compile", "--dtypes", "float32"]) == 0
    assert calls == [("float32", "float64"), ("float32",)]


@pytest.mark.skipif(not tn.kernels.NUMBA_ENABLED, reason="needs Numba")
def test_compile_gives_its_total_time_once(capsys):
    assert main(["compile", "--dtypes", "float32"]) == 0
    captured = capsys.readouterr()
    totals = re.findall(r".* in \d+\.\d s.*", captured.out + captured.err)
    assert len(totals) == 1 and "kernels ready" in totals[0]
    # whatever this process's thread count, the threaded builds are warmed too
    assert "serial and threaded builds, for runs at any thread count" in totals[0]


def test_compile_without_warm_up_says_so(monkeypatch, capsys):
    monkeypatch.delattr(tn.kernels, "warm_up", raising=False)
    assert main(["compile"]) == 1
    assert "no kernels.warm_up" in capsys.readouterr().err


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("tinynet", "numpy", "digits", "fashion-mnist", "TINYNET_BACKEND"):
        assert key in out


def test_info_does_not_promise_a_download_when_offline(monkeypatch, tmp_path, capsys):
    # "not found (downloaded on first use)" was printed with TINYNET_OFFLINE set too
    monkeypatch.setattr("tinynet.data.locate_idx_dataset", lambda name, root=None: None)
    monkeypatch.delenv("TINYNET_OFFLINE", raising=False)
    assert main(["info"]) == 0
    assert "not found (downloaded on first use)" in capsys.readouterr().out
    monkeypatch.setenv("TINYNET_OFFLINE", "1")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "downloaded on first use" not in out
    assert "not found (TINYNET_OFFLINE is set: no download)" in out


@pytest.mark.parametrize("variable, value, argv", [
    ("TINYNET_BACKEND", "gpu", ["--help"]),
    ("TINYNET_GEMM", "x", ["predict", "d.npz", "ok.npy"]),
    ("TINYNET_SHORT_SPIN", "bad", ["info"]),
    ("TINYNET_SHORT_SPIN", "bad", ["--help"]),  # read by 'import tinynet' itself
    ("TINYNET_ADAPTIVE_THREADS", "bad", ["--help"]),
])
def test_a_bad_switch_read_as_the_kernels_load_is_a_one_line_error(variable, value, argv):
    # was a traceback: the parser (which imports the kernels) was built outside the
    # one-line error path, and tinynet.spinwait raised during 'import tinynet'
    env = dict(os.environ, **{variable: value})  # the other switches as the suite runs
    result = subprocess.run([sys.executable, "-m", "tinynet", *argv], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"tinynet: error: {variable}: ")
    assert repr(value) in result.stderr and len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def run_with_stdout_unread(argv, cwd):
    """``python -m tinynet argv`` writing to a pipe whose reader is gone (its read end
    is closed before the command starts), as ``| head -3`` leaves it once it has its
    lines: the first write that reaches the pipe fails, whatever the timing."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "tinynet", *argv], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=300, cwd=cwd)
    finally:
        os.close(write_end)


def test_a_closed_output_pipe_stops_demo_quietly(tmp_path):
    # was "tinynet demo: error: [Errno 32] Broken pipe" and exit status 1; then exit
    # status 141, which a shell shows as SIGPIPE's (128 + 13) but a parent process
    # as an exit: it ends by SIGPIPE now, as a Unix tool (main returns 141 in-process)
    result = run_with_stdout_unread(["demo", "core"], tmp_path)
    assert result.returncode == -signal.SIGPIPE, result.stderr
    assert "Broken pipe" not in result.stderr and "rror" not in result.stderr, result.stderr


def test_train_carries_on_and_saves_its_model_when_its_output_pipe_closes(tmp_path):
    # it stopped at its first line of output and saved no model; the model is the
    # product, the output a report of progress that nobody reads any longer
    result = run_with_stdout_unread(["train", "digits", "--limit", "200", "--hidden", "4",
                                     "--epochs", "2", "--verbose", "2", "--out", "m.npz"],
                                    tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Broken pipe" not in result.stderr and "rror" not in result.stderr, result.stderr
    assert tn.load(tmp_path / "m.npz").input_shape == (64,)


def run_with_stdout_closed(argv, cwd):
    """``python -m tinynet argv >&-``: descriptor 1 closed in the child before it
    starts, so that Python makes its sys.stdout None (``stdout=DEVNULL`` is open)."""
    return subprocess.run([sys.executable, "-m", "tinynet", *argv],
                          preexec_fn=lambda: os.close(1), stderr=subprocess.PIPE, text=True,
                          timeout=300, cwd=cwd)


def test_commands_run_as_they_would_with_their_output_closed(tmp_path):
    # the stream that survives its reader wrapped None and failed at its first print
    # ("'NoneType' object has no attribute 'write'"), where the command had run; and
    # train's progress bar refused the None stream ("expected stream as a file-like ...")
    for argv in (["train", "digits", "--limit", "200", "--hidden", "4", "--epochs", "1",
                  "--verbose", "1", "--out", "m.npz"], ["evaluate", "m.npz", "digits"],
                 ["info"]):
        result = run_with_stdout_closed(argv, tmp_path)
        assert (result.returncode, result.stderr) == (0, ""), argv
    assert tn.load(tmp_path / "m.npz").input_shape == (64,)


class UnreadPipe:
    """A standard output whose reader is gone: every write and flush fails."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    flush = write

    def fileno(self):
        raise OSError("no file descriptor")


def test_commands_whose_product_is_a_file_carry_on_without_a_reader(digits_model, tmp_path,
                                                                    monkeypatch, capsys):
    x_test, _ = digits_test_set()
    np.save(tmp_path / "x.npy", x_test[:3])
    monkeypatch.setattr(sys, "stdout", UnreadPipe())
    predict = ["predict", str(digits_model), str(tmp_path / "x.npy")]
    assert main(predict + ["--out", str(tmp_path / "y.npy")]) == 0
    assert np.load(tmp_path / "y.npy").shape == (3,)
    assert main(predict) == 141  # its output is its product
    assert main(["info"]) == 141
    assert isinstance(sys.stdout, UnreadPipe)  # main puts the stream back
    assert capsys.readouterr().err == ""


def test_unexpected_errors_keep_their_traceback(monkeypatch):
    def boom(args, parser):
        raise RuntimeError("a bug")

    monkeypatch.setitem(cli._COMMANDS, "info", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["info"])


def test_running_out_of_memory_is_one_line_not_a_traceback(monkeypatch, capsys):
    # e.g. --hidden 1000000000: NumPy's MemoryError came out as a traceback
    def allocate(args, parser):
        raise MemoryError("Unable to allocate 238. GiB for an array with shape "
                          "(64, 1000000000) and data type float32")

    monkeypatch.setitem(cli._COMMANDS, "info", allocate)
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinynet info: error: out of memory: Unable to allocate 238. GiB")
    assert "Traceback" not in err
    monkeypatch.setenv("TINYNET_DEBUG", "1")
    with pytest.raises(MemoryError):
        main(["info"])


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_train_on_the_real_fashion_mnist_files(tmp_path, capsys):
    model_path = tmp_path / "fashion.npz"
    assert main(["train", "fashion-mnist", "--limit", "600", "--hidden", "16", "--epochs",
                 "1", "--verbose", "0", "--out", str(model_path)]) == 0
    assert "MLP 784-16-10" in capsys.readouterr().out
    assert tn.load(model_path).input_shape == (784,)


def test_predict_reads_only_the_header_of_a_bad_input_file(digits_model, tmp_path, capsys,
                                                           monkeypatch):
    # A few bytes declaring a huge array, a truncated array and an archive are
    # refused from their first bytes: np.load (whose allocation follows the
    # header, and which parses an archive's whole index) never sees them.
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load was called"))
    huge = tmp_path / "huge.npy"
    with open(huge, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f8", "fortran_order": False, "shape": (10 ** 12, 64)})
    truncated = tmp_path / "truncated.npy"
    with open(truncated, "wb") as f:
        np.lib.format.write_array(f, np.zeros((4, 64)))
    truncated.write_bytes(truncated.read_bytes()[:-8])
    archive = tmp_path / "archive.npy"
    np.savez(tmp_path / "archive.npz", a=np.zeros((2, 64)))
    archive.write_bytes((tmp_path / "archive.npz").read_bytes())
    text = tmp_path / "x.csv"
    text.write_text("1,2,3\n")
    for path, message in [
            (huge, r"declares an array of shape \(1000000000000, 64\) and dtype float64 "
                   r"\(512,000,000,000,128 bytes with its header\), but holds 128 bytes"),
            (truncated, r"shape \(4, 64\).*but holds 2,168 bytes"),
            (archive, r"is an \.npz archive; expected one array in a \.npy file"),
            (text, r"is not a \.npy file \(it does not begin with NumPy's magic string\); "
                   r"expected one array saved with np\.save")]:
        assert main(["predict", str(digits_model), str(path)]) == 1
        assert re.search(message, capsys.readouterr().err), path


def test_a_diverged_model_scores_no_accuracy(tmp_path, capsys):
    # predict_classes read a NaN output as class 0: `evaluate` gave class 0 an
    # accuracy of 1.0 and the train table counted class 0's samples right
    # finite weights (save refuses others) whose outputs are inf - inf = NaN
    model = tn.Sequential([tn.layers.Dense(2, input_dim=64, seed=0),
                           tn.layers.Dense(10, seed=0)])
    model.layers[0].W.value[:] = 3e38
    model.layers[1].W.value[:] = [[1.0] * 10, [-1.0] * 10]
    x_test, y_test = digits_test_set()
    with np.errstate(over="ignore", invalid="ignore"):
        assert cli._accuracy(model, x_test / np.float32(16), y_test, 32) == 0.0
        assert main(["evaluate", str(model.save(tmp_path / "nan.npz")), "digits"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line[:1].isdigit() or line.startswith("all")]
    assert len(rows) == 11 and {row[-1] for row in rows} == {"0.0000"}
    # predict labels such a sample -1, no class, and names no class for it (it
    # printed classes[-1], the last class's name)
    names = [f"name{c}" for c in range(10)]
    path = model.save(tmp_path / "named.npz", metadata={"tinynet_cli": {
        "preprocessing": {"scale": 16}, "classes": names}})
    np.save(tmp_path / "x.npy", x_test[:3])
    with np.errstate(over="ignore", invalid="ignore"):
        assert main(["predict", str(path), str(tmp_path / "x.npy")]) == 0
    assert "3 predictions (input scaled by 1/16): -1, -1, -1\n" in capsys.readouterr().out
