"""The MTL benchmark's quick synthetic part runs and writes its report; the Multi-Fashion
table is built from per-seed runs (Δm% against the same seed's single-task models)."""

import json
import os

import pytest

from benchmarks import mtl


def test_quick_synthetic_part_writes_a_report(tmp_path):
    assert mtl.main(["--quick", "--parts", "synthetic", "--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "mtl.json").read_text())
    runs = payload["results"]["synthetic"]["runs"]
    assert set(runs) == {"1.0", "0.1"}
    assert runs["1.0"]["label_correlation"][0] > runs["0.1"]["label_correlation"][0]
    assert "shared-bottom test MSE" in (tmp_path / "mtl.md").read_text()


def test_fashion_table_computes_delta_m_per_seed():
    def run(left, right, params=10):
        return {"test": {"left/accuracy": left, "right/accuracy": right}, "params": params,
                "seconds": 1.0, "cpu_seconds": 0.5}
    res = {"settings": {"n_train": 1, "n_test": 1, "hidden": [4], "epochs": 1, "lr": 1e-3,
                        "batch_size": 2, "seeds": 2, "experts": 2, "expert_units": 2,
                        "tower": 2, "soft_penalty": 0.0},
           "runs": {"single-task": [run(0.5, 0.5), run(0.8, 0.8)],
                    "hard sharing|pcgrad": [run(0.55, 0.5), run(0.8, 0.88)],
                    "torch hard sharing|equal": "skipped: torch is not installed"}}
    table = mtl.fashion_markdown(res)
    row = next(line for line in table.splitlines() if line.startswith("| hard sharing"))
    # seed 0: (+10% + 0%)/2 = 5; seed 1: (0% + 10%)/2 = 5
    assert "| 5.00 ± 0.00 |" in row
    assert "skipped: torch is not installed" in table


def test_conv_trunk_models_train_and_the_table_names_the_trunk():
    import numpy as np

    from tinynet.mtl import experiments as ex
    rng = np.random.default_rng(0)
    x = rng.random((12, 256)).astype(np.float32)  # 16x16 images
    y = {"left": rng.integers(0, 3, 12), "right": rng.integers(0, 3, 12)}
    hard = ex.hard_sharing(256, "conv", {"left": 3, "right": 3}, seed=0)
    single = ex.single_task(256, "conv", "left", 3, seed=0)
    for model in (hard, single):
        r = ex.run(model, (x, y), (x, y), loss="cross_entropy", metrics=["accuracy"], epochs=1,
                   batch_size=6)
        assert 0 <= r["test"]["left/accuracy"] <= 1
    assert hard.count_params() < 2 * single.count_params()
    res = {"settings": {"n_train": 1, "n_test": 1, "hidden": "conv", "epochs": 1, "lr": 1e-3,
                        "batch_size": 2, "seeds": 1, "experts": 2, "expert_units": 2,
                        "tower": 2, "soft_penalty": 0.0},
           "runs": {"single-task": [{"test": {"left/accuracy": 0.5, "right/accuracy": 0.5},
                                     "params": 1, "seconds": 1.0, "cpu_seconds": 1.0}]}}
    assert "CNN trunk" in mtl.fashion_markdown(res)


def test_sharing_only_the_convolutions_gives_half_the_parameters_and_trains():
    import numpy as np

    from tinynet.layers import Conv2D, Dense
    from tinynet.mtl import experiments as ex
    tasks = {"left": 10, "right": 10}
    hard = ex.hard_sharing(784, "conv-features", tasks, seed=0, head=(64,))
    single = ex.single_task(784, "conv", "left", 10, seed=0)
    assert (hard.count_params(), 2 * single.count_params()) == (225_044, 450_068)
    convs = [layer for layer in hard.layers if isinstance(layer, Conv2D)]
    dense = [layer for layer in hard.layers if isinstance(layer, Dense)]
    assert len(convs) == 2 and len(dense) == 4        # shared: the convolutions only
    # same filters as the single-task CNN of the same seed
    single_convs = [layer for layer in single.layers if isinstance(layer, Conv2D)]
    for a, b in zip(convs, single_convs):
        np.testing.assert_array_equal(a.W.value, b.W.value)
    rng = np.random.default_rng(0)
    x = rng.random((12, 256)).astype(np.float32)      # 16x16 images
    y = {"left": rng.integers(0, 3, 12), "right": rng.integers(0, 3, 12)}
    small = ex.hard_sharing(256, "conv-features", {"left": 3, "right": 3}, seed=0, head=(4,))
    r = ex.run(small, (x, y), (x, y), loss="cross_entropy", metrics=["accuracy"], epochs=1,
               batch_size=6)
    assert 0 <= r["test"]["right/accuracy"] <= 1
    res = {"settings": {"n_train": 1, "n_test": 1, "hidden": "conv", "trunk": "conv-features",
                        "head_units": 64, "epochs": 1, "lr": 1e-3, "batch_size": 2, "seeds": 1,
                        "experts": 2, "expert_units": 2, "tower": 2, "soft_penalty": 0.0},
           "runs": {"single-task": [{"test": {"left/accuracy": 0.5, "right/accuracy": 0.5},
                                     "params": 1, "seconds": 1.0, "cpu_seconds": 1.0}]}}
    assert "convolutional blocks shared, then per task Dense 64" in mtl.fashion_markdown(res)


def test_batch_norm_reaches_both_cnn_trunks_and_names_its_files(capsys):
    from tinynet.layers import BatchNorm, Flatten
    from tinynet.mtl import experiments as ex
    tasks = {"left": 10, "right": 10}
    bn = dict(batch_norm=True)
    whole = ex.hard_sharing(784, "conv", tasks, seed=0, conv=bn)
    features = ex.hard_sharing(784, "conv-features", tasks, seed=0, head=(64,), conv=bn)
    single = ex.single_task(784, "conv", "left", 10, seed=0, conv=bn)
    assert [sum(isinstance(layer, BatchNorm) for layer in m.layers)
            for m in (whole, features, single)] == [3, 2, 3]
    # the shared part of conv-features ends at the Flatten, its BatchNorms kept
    trunk = ex.conv_features(784, batch_norm=True)
    assert isinstance(trunk[-1], Flatten) and sum(isinstance(x, BatchNorm) for x in trunk) == 2
    # 224 biases -> 448 gammas and betas a single-task CNN; the heads' Dense keep theirs
    assert 2 * single.count_params() == 450_068 + 2 * 224
    assert features.count_params() == 225_044 + 96
    parse = mtl.build_parser().parse_args
    assert mtl._file_name(parse(["--trunk", "conv", "--batch-norm", "--lr", "3e-3",
                                 "--validation"])) == "mtl_conv_bn_lr0.003_validation"
    with pytest.raises(SystemExit):
        mtl.main(["--quick", "--parts", "fashion", "--batch-norm"])
    assert "--batch-norm is for the CNN trunks (conv, conv-features); received --trunk mlp" \
        in capsys.readouterr().err
    res = {"settings": {"n_train": 1, "n_test": 1, "hidden": "conv", "trunk": "conv",
                        "batch_norm": True, "epochs": 1, "lr": 1e-3, "batch_size": 2,
                        "seeds": 1, "experts": 2, "expert_units": 2, "tower": 2,
                        "soft_penalty": 0.0},
           "runs": {"single-task": [{"test": {"left/accuracy": 0.5, "right/accuracy": 0.5},
                                     "params": 1, "seconds": 1.0, "cpu_seconds": 1.0}]}}
    assert "Dense 128, BatchNorm before each of its ReLUs" in mtl.fashion_markdown(res)


def test_task_norm_shares_the_cnn_but_its_batch_norms_and_its_gradients_check(capsys):
    import numpy as np

    import tinynet as tn
    from tinynet.layers import BatchNorm, Conv2D, Dense
    from tinynet.mtl import experiments as ex
    tasks = {"left": 10, "right": 10}
    model = ex.task_norm_sharing(784, tasks, seed=0)
    hard = ex.hard_sharing(784, "conv", tasks, seed=0, conv=dict(batch_norm=True))
    norms = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    assert len(norms) == 6 and len({id(n) for n in norms}) == 6     # three per task
    assert [type(layer) for layer in model.layers].count(Conv2D) == 2  # called twice each
    # hard sharing's parameters and a second set of the 448 gammas and betas
    assert model.count_params() == hard.count_params() + 448
    for a, b in zip([x for x in model.layers if isinstance(x, (Conv2D, Dense))],
                    [x for x in hard.layers if isinstance(x, (Conv2D, Dense))]):
        np.testing.assert_array_equal(a.W.value, b.W.value)        # same draws, same seeds
    three = {"a": 10, "b": 10, "c": 10}                # each task after the first: +448
    assert ex.task_norm_sharing(784, three).count_params() == ex.hard_sharing(
        784, "conv", three, conv=dict(batch_norm=True)).count_params() + 2 * 448
    with pytest.raises(ValueError, match="shares a CNN but its BatchNorms; received "
                                         r"conv=dict\(batch_norm=False\)"):
        ex.task_norm_sharing(784, tasks, conv=dict(batch_norm=False))
    small = ex.task_norm_sharing(64, {"a": 3, "b": 2}, seed=0, conv=dict(filters=(2,), units=4))
    rng = np.random.default_rng(0)
    x, y = rng.random((6, 64)), {"a": np.arange(6) % 3, "b": np.arange(6) % 2}
    assert tn.gradcheck(small, x, y, loss="cross_entropy").passed
    # the benchmark runs it beside BatchNorm CNNs only, and names its files
    for argv in (["--trunk", "conv"], ["--trunk", "conv-features", "--batch-norm"], []):
        with pytest.raises(SystemExit):
            mtl.main(["--quick", "--parts", "fashion", "--architectures", "task-norm", *argv])
        assert "task-norm shares the CNN but its BatchNorms: it needs --trunk conv " \
            "--batch-norm" in capsys.readouterr().err
    parse = mtl.build_parser().parse_args
    assert mtl._file_name(parse(["--trunk", "conv", "--batch-norm", "--architectures", "hard",
                                 "task-norm"])) == "mtl_conv_bn_tasknorm"
    res = {"settings": {"n_train": 1, "n_test": 1, "hidden": "conv", "trunk": "conv",
                        "batch_norm": True, "epochs": 1, "lr": 1e-3, "batch_size": 2,
                        "seeds": 1, "experts": 2, "expert_units": 2, "tower": 2,
                        "soft_penalty": 0.0},
           "runs": {name: [{"test": {"left/accuracy": 0.5, "right/accuracy": 0.5},
                            "params": 1, "seconds": 1.0, "cpu_seconds": 1.0}]
                    for name in ("single-task", "task-norm|equal")}}
    assert "task-norm: one, its BatchNorms one set per task" in mtl.fashion_markdown(res)


def test_head_units_are_for_the_conv_features_trunk_only(capsys):
    for argv in (["--head-units", "32"], ["--trunk", "conv", "--head-units", "32"]):
        with pytest.raises(SystemExit):
            mtl.main(["--quick", "--parts", "synthetic", *argv])
        assert "--head-units is for --trunk conv-features" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        mtl.main(["--quick", "--parts", "synthetic", "--trunk", "conv-features",
                  "--head-units", "0"])
    assert "expected a positive number of units, received 0" in capsys.readouterr().err
    parse = mtl.build_parser().parse_args
    assert mtl._file_name(parse(["--trunk", "conv-features"])) == "mtl_convfeatures64"
    assert mtl._file_name(parse(["--trunk", "conv-features", "--head-units", "128",
                                 "--validation"])) == "mtl_convfeatures128_validation"


def test_cnn_and_validation_runs_write_files_of_their_own(tmp_path):
    assert mtl.main(["--quick", "--parts", "synthetic", "--trunk", "conv", "--validation",
                     "--out", str(tmp_path)]) == 0
    assert (tmp_path / "mtl_conv_validation.md").exists()
    assert not (tmp_path / "mtl.md").exists()
    text = (tmp_path / "mtl_conv_validation.md").read_text()
    assert "Command: `python -m benchmarks mtl --quick --parts synthetic --trunk conv " \
           "--validation`" in text                         # the arguments, without --out


def test_dropout_goes_into_the_single_task_and_hard_sharing_mlps_only(tmp_path):
    from tinynet.layers import Dropout
    from tinynet.mtl import experiments as ex
    hard = ex.hard_sharing(16, [8, 4], {"a": 2, "b": 3}, seed=0, dropout=0.25)
    single = ex.single_task(16, [8, 4], "a", 2, seed=0, dropout=0.25)
    for model in (hard, single):
        rates = [layer.rate for layer in model.layers if isinstance(layer, Dropout)]
        assert rates == [0.25, 0.25]
    assert not any(isinstance(layer, Dropout) for layer in ex.hard_sharing(
        16, [8, 4], {"a": 2, "b": 3}, seed=0).layers)
    with pytest.raises(ValueError, match="dropout is for the MLP trunks"):
        ex.hard_sharing(16, "conv", {"a": 2, "b": 3}, dropout=0.5)
    res = {"settings": {"n_train": 1, "n_test": 1, "hidden": [4], "epochs": 1, "lr": 1e-3,
                        "batch_size": 2, "seeds": 1, "experts": 2, "expert_units": 2,
                        "tower": 2, "soft_penalty": 0.0, "dropout": 0.3},
           "runs": {"single-task": [{"test": {"left/accuracy": 0.5, "right/accuracy": 0.5},
                                     "params": 1, "seconds": 1.0, "cpu_seconds": 1.0}]}}
    assert "dropout 0.3 after each hidden layer" in mtl.fashion_markdown(res)


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"),
                    reason="needs Debian's dataset-fashion-mnist")
def test_a_run_can_be_limited_to_some_models_and_weightings(tmp_path):
    assert mtl.main(["--quick", "--parts", "fashion", "--architectures", "hard",
                     "--weightings", "equal", "dwa", "--dropout", "0.2",
                     "--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "mtl_dropout0.2.json").read_text())
    runs = payload["results"]["fashion"]["runs"]
    assert set(runs) == {"single-task", "hard sharing|equal", "hard sharing|dwa",
                         "torch hard sharing|equal"}
    twin = runs["torch hard sharing|equal"]  # trained with the same dropout, if torch is here
    assert twin == "skipped: torch is not installed" or 0 <= twin[0]["test"]["left/accuracy"] <= 1
    text = (tmp_path / "mtl_dropout0.2.md").read_text()
    assert "MMoE" not in text and "cross-stitch" not in text and "dropout 0.2" in text
    assert not (tmp_path / "mtl.md").exists()


def test_the_cnn_trunk_refuses_the_mlp_only_architectures_before_any_training(capsys):
    with pytest.raises(SystemExit):
        mtl.main(["--quick", "--parts", "synthetic", "fashion", "--trunk", "conv",
                  "--architectures", "hard", "mmoe"])
    err = capsys.readouterr().err
    assert "single-task, hard sharing and task-norm only" in err and "hard mmoe" in err


def _tiny_pairs(n=24, d=16, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.random((n, d)).astype(np.float32)
    return x, {"left": rng.integers(0, 3, n), "right": rng.integers(0, 3, n)}


def test_cosine_schedule_decays_the_rate_each_epoch_and_torch_follows_the_same_rates():
    import math

    from tinynet.mtl import experiments as ex
    data = _tiny_pairs()
    tasks = {"left": 3, "right": 3}
    r = ex.run(ex.hard_sharing(16, [8], tasks, seed=0), data, data, loss="cross_entropy",
               epochs=4, batch_size=8, lr=0.01, lr_schedule="cosine")
    expected = [0.005 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert r["history"]["lr"] == pytest.approx(expected)        # 0.01, 0.0085, 0.005, 0.0015
    flat = ex.run(ex.hard_sharing(16, [8], tasks, seed=0), data, data, loss="cross_entropy",
                  epochs=2, batch_size=8, lr=0.01)
    assert "lr" not in flat["history"]                            # no scheduler, no log
    with pytest.raises(ValueError, match="lr_schedule as one of constant, cosine.*'step'"):
        ex.run(ex.hard_sharing(16, [8], tasks, seed=0), data, data, loss="cross_entropy",
               lr_schedule="step")
    torch = pytest.importorskip("torch")
    from benchmarks import _mtl_torch
    twin = _mtl_torch.hard_sharing(data, data, [8], tasks, 4, 8, 0.01, 0, lr_schedule="cosine")
    assert twin["lr_per_epoch"] == pytest.approx(expected)
    assert torch.get_num_threads() >= 1


def test_a_cosine_run_writes_files_of_its_own_and_the_table_says_so(tmp_path):
    assert mtl.main(["--quick", "--parts", "synthetic", "--lr-schedule", "cosine",
                     "--out", str(tmp_path)]) == 0
    assert (tmp_path / "mtl_cosine.md").exists() and not (tmp_path / "mtl.md").exists()
    res = {"settings": {"n_train": 1, "n_test": 1, "hidden": [4], "epochs": 3, "lr": 1e-3,
                        "lr_schedule": "cosine", "batch_size": 2, "seeds": 1, "experts": 2,
                        "expert_units": 2, "tower": 2, "soft_penalty": 0.0},
           "runs": {"single-task": [{"test": {"left/accuracy": 0.5, "right/accuracy": 0.5},
                                     "params": 1, "seconds": 1.0, "cpu_seconds": 1.0}]}}
    assert "(lr 0.001, cosine decay to 0 over the epochs, batch 2)" in mtl.fashion_markdown(res)
    res["settings"]["lr_schedule"] = "constant"
    assert "(lr 0.001, batch 2)" in mtl.fashion_markdown(res)


def test_weight_decay_reaches_adam_and_shrinks_the_weights_and_names_its_files(tmp_path):
    import numpy as np

    from tinynet.mtl import experiments as ex
    data = _tiny_pairs()
    tasks = {"left": 3, "right": 3}
    models = {wd: ex.hard_sharing(16, [8], tasks, seed=0) for wd in (0.0, 0.5)}
    for wd, model in models.items():
        ex.run(model, data, data, loss="cross_entropy", epochs=3, batch_size=8, lr=0.01,
               weight_decay=wd)
    assert [g["weight_decay"] for g in models[0.5].optimizer.param_groups] == [0.5]
    norm = {wd: sum(float(np.sum(p.value ** 2)) for p in m.parameters())
            for wd, m in models.items()}
    assert norm[0.5] < 0.9 * norm[0.0]
    with pytest.raises(ValueError, match="weight_decay"):
        ex.run(ex.hard_sharing(16, [8], tasks, seed=0), data, data, loss="cross_entropy",
               weight_decay=-1.0)
    res = {"settings": {"n_train": 1, "n_test": 1, "hidden": [4], "epochs": 3, "lr": 1e-3,
                        "weight_decay": 0.01, "batch_size": 2, "seeds": 1, "experts": 2,
                        "expert_units": 2, "tower": 2, "soft_penalty": 0.0},
           "runs": {"single-task": [{"test": {"left/accuracy": 0.5, "right/accuracy": 0.5},
                                     "params": 1, "seconds": 1.0, "cpu_seconds": 1.0}]}}
    assert ("(lr 0.001, L2 weight decay 0.01 on every parameter, batch 2)"
            in mtl.fashion_markdown(res))
    assert mtl.main(["--quick", "--parts", "synthetic", "--weight-decay", "0.01",
                     "--out", str(tmp_path)]) == 0
    assert (tmp_path / "mtl_wd0.01.md").exists() and not (tmp_path / "mtl.md").exists()
    pytest.importorskip("torch")
    from benchmarks import _mtl_torch
    twins = [_mtl_torch.hard_sharing(data, data, [8], tasks, 3, 8, 0.01, 0, weight_decay=wd)
             for wd in (0.0, 5.0)]   # so strong that the twin's accuracies must move
    assert twins[0]["test"] != twins[1]["test"]


def test_label_smoothing_reaches_every_model_and_names_its_files(tmp_path, monkeypatch):
    import json

    from tinynet.mtl import experiments as ex
    seen = []
    run = ex.run

    def spy(model, train, test, loss, **kw):
        seen.append(loss.label_smoothing)
        return run(model, train, test, loss, **kw)

    monkeypatch.setattr(ex, "run", spy)
    assert mtl.main(["--quick", "--parts", "fashion", "--label-smoothing", "0.2",
                     "--weightings", "equal", "--architectures", "hard", "mmoe",
                     "--out", str(tmp_path)]) == 0
    assert seen == [0.2] * 4   # two single-task models, hard sharing, MMoE
    assert (tmp_path / "mtl_ls0.2.md").exists() and not (tmp_path / "mtl.md").exists()
    assert "cross-entropy with label smoothing 0.2" in (tmp_path / "mtl_ls0.2.md").read_text()
    saved = json.loads((tmp_path / "mtl_ls0.2.json").read_text())["results"]["fashion"]
    assert saved["settings"]["label_smoothing"] == 0.2
    parse = mtl.build_parser().parse_args
    assert mtl._file_name(parse(["--trunk", "conv", "--label-smoothing", "0.1", "--lr", "3e-3",
                                 "--validation"])) == "mtl_conv_ls0.1_lr0.003_validation"
    for bad in ("1", "-0.1"):
        with pytest.raises(SystemExit):
            mtl.main(["--quick", "--parts", "fashion", "--label-smoothing", bad,
                      "--out", str(tmp_path)])


def test_the_cnn_trunks_can_be_sized_and_such_runs_write_files_of_their_own(capsys):
    from tinynet.layers import Conv2D, Dense
    from tinynet.mtl import experiments as ex
    tasks = {"left": 10, "right": 10}
    wide = dict(filters=(64, 128), units=128)
    hard = ex.hard_sharing(784, "conv-features", tasks, seed=0, head=(128,), conv=wide)
    single = ex.single_task(784, "conv", "left", 10, seed=0, conv=wide)
    # 640 + 73,856 shared; per task 3,200 x 128 + 128 and 128 x 10 + 10
    assert (hard.count_params(), 2 * single.count_params()) == (896_532, 971_028)
    assert [layer.filters for layer in hard.layers if isinstance(layer, Conv2D)] == [64, 128]
    whole = ex.hard_sharing(784, "conv", tasks, seed=0, conv=dict(filters=(16, 32), units=40))
    assert [layer.units for layer in whole.layers if isinstance(layer, Dense)] == [40, 10, 10]
    with pytest.raises(ValueError, match="conv= sizes the CNN trunks"):
        ex.single_task(784, [8], "left", 10, conv=wide)
    parse = mtl.build_parser().parse_args
    assert mtl._file_name(parse(["--trunk", "conv-features", "--filters", "64", "128",
                                 "--head-units", "128", "--validation"])) == \
        "mtl_convfeatures128_f64-128_validation"
    assert mtl._file_name(parse(["--trunk", "conv", "--units", "256"])) == "mtl_conv_u256"
    assert mtl._file_name(parse(["--trunk", "conv", "--filters", "32", "64",
                                 "--units", "128"])) == "mtl_conv"   # the defaults, named as such
    # a longer run never overwrites a shorter one of the same settings
    assert mtl._file_name(parse(["--trunk", "conv", "--lr-schedule", "cosine", "--epochs", "40",
                                 "--lr", "3e-3", "--validation"])) == \
        "mtl_conv_cosine_e40_lr0.003_validation"
    assert mtl._file_name(parse(["--trunk", "conv", "--epochs", "10"])) == "mtl_conv"
    # an MLP of other widths, or another dropout rate, never overwrites the main
    # table (mtl.md) or another run
    assert mtl._file_name(parse(["--hidden", "2048", "1024", "--dropout", "0.3"])) == \
        "mtl_h2048-1024_dropout0.3"
    assert mtl._file_name(parse(["--dropout", "0.5"])) == "mtl_dropout0.5"
    assert mtl._file_name(parse(["--hidden", "256", "128"])) == "mtl"
    for argv, message in ((["--filters", "8"], "--filters and --units size the CNN trunks"),
                          (["--trunk", "conv", "--units", "0"], "expected positive counts")):
        with pytest.raises(SystemExit):
            mtl.main(["--quick", "--parts", "synthetic", *argv])
        assert message in capsys.readouterr().err
    res = {"settings": {"n_train": 1, "n_test": 1, "hidden": "conv", "trunk": "conv",
                        "filters": [64, 128], "units": 256, "epochs": 1, "lr": 1e-3,
                        "batch_size": 2, "seeds": 1},
           "runs": {"single-task": [{"test": {"left/accuracy": 0.5, "right/accuracy": 0.5},
                                     "params": 1, "seconds": 1.0, "cpu_seconds": 1.0}]}}
    assert ("3x3 conv 64, 2x2 max pool, 3x3 conv 128, 2x2 max pool, Dense 256"
            in mtl.fashion_markdown(res))


@pytest.mark.parametrize("schedule, weight_decay, smoothing, optimizer",
                         [("constant", 0.0, 0.0, "adam"), ("cosine", 1e-3, 0.0, "adam"),
                          ("constant", 0.0, 0.3, "adam"), ("cosine", 1e-3, 0.0, "sgd")])
def test_the_torch_twin_trains_the_same_model_as_tinynets_hard_sharing(schedule, weight_decay,
                                                                      smoothing, optimizer):
    # the twin started from PyTorch's own initialisation (another distribution)
    # and shuffled with another generator: "the same model" in name only. With
    # the same start, batches, optimizer and schedule, only rounding may differ.
    import numpy as np
    pytest.importorskip("torch")
    from benchmarks import _mtl_torch
    from tinynet.losses import CrossEntropy
    from tinynet.mtl import experiments as ex
    data = _tiny_pairs()
    tasks = {"left": 3, "right": 3}
    model = ex.hard_sharing(16, [8, 8], tasks, seed=5)
    momentum = 0.9 if optimizer == "sgd" else None
    lr = 0.1 if optimizer == "sgd" else 0.01   # SGD moves the weights as far as Adam's 0.01
    ours = ex.run(model, data, data, loss=CrossEntropy(label_smoothing=smoothing),
                  metrics=["accuracy"], epochs=3, batch_size=8, lr=lr, seed=5,
                  lr_schedule=schedule, weight_decay=weight_decay, optimizer=optimizer,
                  momentum=momentum)
    twin = _mtl_torch.hard_sharing(data, data, [8, 8], tasks, 3, 8, lr, 5,
                                   lr_schedule=schedule, weight_decay=weight_decay,
                                   label_smoothing=smoothing, optimizer=optimizer,
                                   momentum=momentum)
    assert len(twin["weights"]) == len(model.get_weights())
    start = ex.hard_sharing(16, [8, 8], tasks, seed=5).get_weights()
    assert max(np.abs(w - w0).max() for w, w0 in zip(model.get_weights(), start)) > 1e-2
    for theirs, mine in zip(twin["weights"], model.get_weights()):
        np.testing.assert_allclose(theirs, mine, rtol=1e-4, atol=1e-5)
    assert twin["test"] == {k: ours["test"][k] for k in twin["test"]}  # same accuracies


def test_sgd_reaches_every_model_names_its_files_and_its_table(tmp_path, monkeypatch, capsys):
    import json

    from tinynet import optim
    seen = []
    compile_ = optim.get

    def spy(spec, *a, **kw):
        opt = compile_(spec, *a, **kw)
        if isinstance(spec, str) and "momentum" in kw:   # run's (compile passes it on)
            seen.append((type(opt).__name__, opt.defaults.get("momentum"), opt.defaults["lr"]))
        return opt

    monkeypatch.setattr(optim, "get", spy)
    twins = []
    try:
        import torch
    except ImportError:
        torch = None
    else:
        sgd = torch.optim.SGD

        def torch_spy(params, **kw):
            twins.append(kw)
            return sgd(params, **kw)

        monkeypatch.setattr(torch.optim, "SGD", torch_spy)
    assert mtl.main(["--quick", "--parts", "fashion", "--optimizer", "sgd", "--momentum", "0.5",
                     "--lr", "0.05", "--weightings", "equal", "--architectures", "hard", "mmoe",
                     "--out", str(tmp_path)]) == 0
    # two single-task models, hard sharing, MMoE: every one SGD with the momentum asked for
    assert seen == [("SGD", 0.5, 0.05)] * 4
    if torch is not None:   # and the torch twin of hard sharing
        assert [(kw["lr"], kw["momentum"]) for kw in twins] == [(0.05, 0.5)]
    saved = json.loads((tmp_path / "mtl_sgd0.5_lr0.05.json").read_text())["results"]["fashion"]
    assert saved["settings"]["optimizer"] == "sgd" and saved["settings"]["momentum"] == 0.5
    assert "epochs of SGD with momentum 0.5 (lr 0.05" in (tmp_path / "mtl_sgd0.5_lr0.05.md"
                                                          ).read_text()
    args = mtl.build_parser().parse_args(["--trunk", "conv", "--optimizer", "sgd", "--lr", "0.05",
                                          "--lr-schedule", "cosine", "--epochs", "20",
                                          "--validation"])
    mtl._fill_defaults(args)   # momentum 0.9 unless given
    assert mtl._file_name(args) == "mtl_conv_cosine_e20_sgd0.9_lr0.05_validation"
    # the default spelt out is the same run: it replaces the report without --overwrite
    quick = ["--quick", "--parts", "fashion", "--optimizer", "sgd", "--weightings", "equal",
             "--architectures", "hard", "--out", str(tmp_path)]
    assert mtl.main(quick) == 0 and mtl.main(quick + ["--momentum", "0.9"]) == 0
    assert (tmp_path / "mtl_sgd0.9.json").exists()
    capsys.readouterr()
    # files written before the switch ran Adam, and say so
    assert mtl._optimizer_words({}) == "Adam"
    assert mtl._optimizer_words({"optimizer": "sgd", "momentum": 0.0}) == "SGD"
    from tinynet.mtl import experiments as ex
    with pytest.raises(ValueError, match=r"momentum only with an optimizer that has one .*"
                                         r"received optimizer='adam'"):
        ex.run(ex.hard_sharing(16, [4], {"left": 3, "right": 3}), _tiny_pairs(), _tiny_pairs(),
               loss="cross_entropy", optimizer="adam", momentum=0.9)
    with pytest.raises(SystemExit):
        mtl.main(["--quick", "--parts", "fashion", "--momentum", "0.9", "--out", str(tmp_path)])
    assert "--momentum is SGD's (--optimizer sgd); received --optimizer adam" in (
        capsys.readouterr().err)
