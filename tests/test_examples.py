"""Run every example in its --quick mode and check what it leaves behind."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import networkx as nx
import pytest
import torch
from PIL import Image

from ncg.errors import NCGError
from ncg.datasets import load_dataset

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    summary = _load("evolve_mnist").main(["--quick", "--out", str(out), "--seed", "1"])
    return out, summary


@pytest.mark.slow
def test_evolve_mnist_quick_writes_a_complete_run_folder(quick_run):
    out, summary = quick_run
    for name in ("config.json", "metrics.csv", "metrics.json", "history.json", "model.pt",
                 "graph.graphml", "coactivation.npz", "summary.json", "explorer.html"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert (config["format"], config["version"]) == ("ncg.run", 2) and config["args"]["seed"] == 1
    if os.name == "posix":  # every file as open() would make it, not mkstemp's 0o600
        mask = os.umask(0)
        os.umask(mask)
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir() if p.is_file()}
        assert set(modes.values()) == {0o666 & ~mask}, modes
    saved = json.loads((out / "summary.json").read_text())
    for key in ("test_accuracy", "edges", "neurons", "depth", "edges_pruned", "edges_added", "wall_seconds"):
        assert key in saved, key
    assert saved == summary
    assert 0.5 < saved["test_accuracy"] <= 1.0
    assert saved["edges_pruned"] > 0
    assert saved["rounds"] == config["args"]["rounds"]  # the evolve rounds, as the evolution figure's title says
    assert saved["edges"] < saved["initial_edges"]
    assert nx.read_graphml(out / "graph.graphml").number_of_edges() == saved["edges"]
    pngs = sorted(out.glob("*.png"))
    assert pngs, "figures were not rendered"
    for png in pngs:
        with Image.open(png) as image:
            assert image.size[0] > 100 and image.size[1] > 100


def test_evolve_mnist_help_lists_the_knobs():
    result = subprocess.run([sys.executable, str(EXAMPLES / "evolve_mnist.py"), "--help"],
                            capture_output=True, text=True, check=True)
    for flag in ("--dataset", "--neurons", "--epochs", "--rounds", "--tau", "--seed", "--device", "--out", "--quick",
                 "--resume", "--overwrite", "--allow-config-change", "--grow-neurons", "--grow-score"):
        assert flag in result.stdout
    assert "(default: None)" not in result.stdout and "(default: False)" not in result.stdout
    assert "(default: 512; --quick: 48)" in " ".join(result.stdout.split())
    module = _load("evolve_mnist")
    epilog = result.stdout.split("RULES: ", 1)[1]  # the rule placeholders are explained in the help
    for start, rules in module.RULES.items():
        line = next(row for row in epilog.splitlines() if row.split()[:1] == [start])
        assert rules["prune_score"] in line and rules["grow_score"] in line, start
    for action in module.build_parser()._actions:
        assert action.help and action.help.strip(), action.option_strings


def test_evolve_mnist_runs_on_digits(tmp_path):
    summary = _load("evolve_mnist").main(["--quick", "--dataset", "digits", "--out", str(tmp_path), "--no-figures"])
    assert summary["dataset"] == "digits" and summary["neurons"] <= 64 + 58  # 64 input nodes, 48 + 10 neurons


def test_evolve_mnist_trains_on_your_own_table(tmp_path):
    rng = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=rng)
    rows = ["a,b,c,d,e,label"] + [",".join(f"{v:.4f}" for v in r) + f",{int(r[0] + r[1] > 0)}" for r in x.tolist()]
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")
    main = _load("evolve_mnist").main
    summary = main(["--quick", "--data", str(tmp_path / "table.csv"), "--target", "label", "--standardize",
                    "--out", str(tmp_path / "run"), "--no-figures"])
    assert summary["dataset"] == "table" and 0.0 <= summary["test_accuracy"] <= 1.0
    assert (tmp_path / "run" / "model.pt").is_file()
    torch.save({"x": x, "y": x[:, :1] * 2.0}, tmp_path / "reg.pt")
    summary = main(["--quick", "--data", str(tmp_path / "reg.pt"), "--out", str(tmp_path / "reg"), "--no-figures"])
    assert "test_mse" in summary and "test_accuracy" not in summary
    with pytest.raises(NCGError, match="no column 'nope'"):
        main(["--quick", "--data", str(tmp_path / "table.csv"), "--target", "nope", "--out", str(tmp_path / "x")])


def _iris_csv(path: Path) -> Path:
    from sklearn.datasets import load_iris

    iris = load_iris()
    rows = [",".join(f"{v:g}" for v in row) + f",{iris.target_names[t]}" for row, t in zip(iris.data, iris.target)]
    path.write_text("sepal_length,sepal_width,petal_length,petal_width,species\n" + "\n".join(rows) + "\n")
    return path


def test_a_small_table_with_text_labels_trains_by_steps_and_stores_its_classes(tmp_path, capsys):
    iris = _iris_csv(tmp_path / "iris.csv")
    main = _load("evolve_mnist").main
    summary = main(["--quick", "--data", str(iris), "--target", "species", "--standardize", "--out",
                    str(tmp_path / "run"), "--no-figures"])
    printed = capsys.readouterr().out
    assert "task: classification, 3 classes (setosa, versicolor, virginica); --task sets it" in printed
    assert ("small table (106 training rows): --neurons 48 --batch-size 16 --epochs 8 --final-epochs 12, 56 steps a "
            "round") in printed
    stored = json.loads((tmp_path / "run" / "classes.json").read_text())
    assert stored == {"target": "species", "task": "classification", "classes": ["setosa", "versicolor", "virginica"]}
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["args"]["batch_size"], config["args"]["epochs"], config["evolve"]["batch_size"]) == (16, 8, 16)
    assert summary["test_split"].endswith("22 of 150 samples of iris.csv")
    again = main(["--quick", "--data", str(iris), "--target", "species", "--standardize", "--out",
                  str(tmp_path / "run"), "--no-figures", "--resume"])  # the filled-in schedule is the stored one
    assert "test_accuracy" in again
    explicit = main(["--quick", "--data", str(iris), "--target", "species", "--batch-size", "53", "--epochs", "1",
                     "--final-epochs", "0", "--out", str(tmp_path / "explicit"), "--no-figures"])
    assert explicit["rounds"] >= 1
    printed = capsys.readouterr().out
    assert "(106 training rows): --neurons 48 --batch-size 53 --epochs 1 --final-epochs 0, 2 steps" in printed
    with pytest.raises(NCGError, match=r"iris\.csv: task='regression' needs a numeric target, but column 'species'"):
        main(["--quick", "--data", str(iris), "--target", "species", "--task", "regression", "--out",
              str(tmp_path / "reg")])
    assert not (tmp_path / "reg").exists()


def test_the_task_of_a_table_can_be_overridden(tmp_path, capsys):
    x = torch.arange(60.0).reshape(30, 2)
    torch.save({"x": x, "y": torch.arange(30) % 3}, tmp_path / "t.pt")
    main = _load("evolve_mnist").main
    summary = main(["--quick", "--data", str(tmp_path / "t.pt"), "--task", "regression", "--out", str(tmp_path / "r"),
                    "--no-figures"])
    assert "task: regression; --task sets it" in capsys.readouterr().out and "test_mse" in summary
    assert json.loads((tmp_path / "r" / "classes.json").read_text())["classes"] == []
    with pytest.raises(SystemExit):
        _load("evolve_mnist").parse_args(["--task", "regression"])
    assert "--task sets what a --data table's target is; pass --data FILE too" in capsys.readouterr().err


@pytest.mark.slow
def test_evolve_mnist_logs_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _load("evolve_mnist").main(["--quick", "--rounds", "1", "--out", str(tmp_path / "run"), "--no-figures",
                                "--tensorboard", str(tmp_path / "tb")])
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    assert {"graph/edges", "val/accuracy", "timing/seconds_per_step"} <= set(events.Tags()["scalars"])
    assert "topology" in events.Tags()["images"]


def test_custom_ncg_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit):
        _load("custom_ncg").main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for line in ("--epochs EPOCHS training epochs (default: 30)", "--seed SEED seed of"):
        assert line in shown, line


def test_custom_ncg_quick():
    result = _load("custom_ncg").main(["--quick"])
    assert result["neurons"] == 34 and 0.0 <= result["test_accuracy"] <= 1.0


@pytest.mark.slow
def test_export_graphml_on_a_run(quick_run, tmp_path):
    out, summary = quick_run
    analysis = _load("export_graphml").main([str(out), "--out", str(tmp_path / "g.graphml")])
    assert analysis["is_dag"] and analysis["identical_outputs"]
    assert analysis["edges"] == summary["edges"]


@pytest.mark.slow
def test_evolve_mnist_resume_continues_a_saved_run(quick_run):
    out, summary = quick_run
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "different EvolveConfig": the target counts the initial biases
        again = _load("evolve_mnist").main(["--quick", "--out", str(out), "--seed", "1", "--resume", "--no-figures"])
    for key in ("test_accuracy", "edges", "neurons", "edges_pruned", "edges_added"):
        assert again[key] == summary[key], key


def test_quick_and_full_runs_get_their_own_default_folders():
    parse = _load("evolve_mnist").parse_args
    assert parse([]).out == "runs/mnist-seed0"
    assert parse(["--quick"]).out == "runs/mnist-seed0-quick"
    assert parse(["--quick", "--dataset", "digits", "--seed", "3"]).out == "runs/digits-seed3-quick"
    assert parse(["--quick", "--out", "elsewhere"]).out == "elsewhere"


@pytest.fixture
def quick_copy(quick_run, tmp_path):
    """A copy of the quick run's folder, for tests that change it."""
    out = tmp_path / "copy"
    shutil.copytree(quick_run[0], out)
    return out


@pytest.mark.slow
def test_a_new_run_refuses_a_folder_holding_another_run(quick_copy):
    config = (quick_copy / "config.json").read_bytes()
    command = [sys.executable, str(EXAMPLES / "evolve_mnist.py"), "--no-figures", "--out", str(quick_copy)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: --out {quick_copy} already holds a run")
    for hint in ("a --quick run", "--resume", "--overwrite", "another --out"):
        assert hint in result.stderr, hint
    assert (quick_copy / "config.json").read_bytes() == config  # nothing written before the check
    summary = _load("evolve_mnist").main(["--quick", "--rounds", "1", "--out", str(quick_copy), "--overwrite",
                                          "--no-figures", "--seed", "1"])
    assert json.loads((quick_copy / "config.json").read_text())["args"]["rounds"] == 1
    assert summary["rounds"] <= 1 and json.loads((quick_copy / "summary.json").read_text()) == summary


@pytest.mark.slow
def test_resume_refuses_other_flags_unless_allowed(quick_copy):
    from ncg.errors import NCGError

    main = _load("evolve_mnist").main
    config = (quick_copy / "config.json").read_bytes()
    resume = ["--quick", "--seed", "1", "--out", str(quick_copy), "--resume", "--no-figures", "--record-samples", "400"]
    with pytest.raises(NCGError, match=r"--record-samples: 500 \(stored\) vs 400 \(given\)") as error:
        main(resume)
    assert "--allow-config-change" in str(error.value) and "--overwrite" in str(error.value)
    assert (quick_copy / "config.json").read_bytes() == config
    with pytest.warns(UserWarning, match=r"different EvolveConfig \(changed: record_samples: 500 -> 400\)"):
        main([*resume, "--allow-config-change"])
    assert json.loads((quick_copy / "config.json").read_text())["args"]["record_samples"] == 400
    (quick_copy / "config.json").unlink()  # no stored flags: the checkpoint's EvolveConfig is compared
    with pytest.raises(NCGError, match=r"EvolveConfig.rounds: 2 \(stored\) vs 4 \(given\)"):
        main(["--seed", "1", "--out", str(quick_copy), "--resume", "--no-figures"])


def test_explicit_flags_win_over_quick_and_bad_values_are_refused(capsys):
    parse = _load("evolve_mnist").parse_args
    args = parse(["--quick", "--neurons", "7", "--epochs", "3"])
    assert (args.neurons, args.epochs, args.rounds, args.final_epochs) == (7, 3, 2, 1)
    assert parse([]).neurons == 512
    for bad in (["--quick", "--neurons", "0"], ["--rounds", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            parse(bad)
        assert exit_info.value.code == 2
    assert "must be >=" in capsys.readouterr().err



def test_threads_flag_takes_auto_or_a_count(capsys):
    example = _load("evolve_mnist")
    assert example.parse_args([]).threads == "auto" and example.parse_args(["--threads", "2"]).threads == 2
    for bad in ("0", "-1", "many", "1.5"):
        with pytest.raises(SystemExit) as exit_info:
            example.parse_args(["--threads", bad])
        assert exit_info.value.code == 2
    assert "expected auto or a positive count of threads" in capsys.readouterr().err


@pytest.mark.slow
def test_threads_may_change_on_resume_and_are_restored_after_the_run(quick_copy):
    example = _load("evolve_mnist")
    before = torch.get_num_threads()
    summary = example.main(["--quick", "--seed", "1", "--out", str(quick_copy), "--resume", "--no-figures",
                            "--threads", "1"])
    assert summary["threads"] == 1 and torch.get_num_threads() == before  # where, not what: no refusal

def _run_example(out: Path, *extra: str, kill_when=None) -> subprocess.Popen | None:
    """Run the main example in a subprocess (one thread, so runs are bitwise repeatable); with
    ``kill_when(out)``, SIGKILL it as soon as that returns True (polled every millisecond)."""
    import os
    import signal
    import time

    args = [sys.executable, str(EXAMPLES / "evolve_mnist.py"), "--quick", "--start", "complete", "--neurons", "300", "--no-figures",
            "--out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kill_when is None:
        assert process.wait(timeout=300) == 0
        return None
    while process.poll() is None:
        if kill_when(out):
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.001)
    process.wait(timeout=60)
    return process


def _rounds_saved(out: Path) -> int:
    try:
        return len(json.loads((out / "history.json").read_text())["rounds"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_a_run_killed_at_any_point_resumes_to_the_uninterrupted_result(tmp_path):
    reference = tmp_path / "reference"
    _run_example(reference)
    expected = json.loads((reference / "summary.json").read_text())
    kill_points = {
        "after the first round": lambda out: _rounds_saved(out) >= 2,
        "during a checkpoint write": lambda out: any(p.name.startswith(".model.pt.") for p in out.glob(".*.tmp")),
        "after the fine-tuning": lambda out: _rounds_saved(out) >= 4,
    }
    killed = 0
    for name, condition in kill_points.items():
        out = tmp_path / name.replace(" ", "-")
        process = _run_example(out, kill_when=condition)
        killed += process.returncode == -9
        _run_example(out, "--resume")
        got = json.loads((out / "summary.json").read_text())
        for key in ("test_accuracy", "test_loss", "edges", "neurons", "depth", "edges_pruned", "edges_added"):
            assert got[key] == expected[key], (name, key)
        assert (out / "graph.graphml").read_bytes() == (reference / "graph.graphml").read_bytes(), name
    assert killed >= 2, "the kill points were not reached"


@pytest.mark.slow
def test_cli_errors_are_a_message_not_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "evolve_mnist.py"), "--quick", "--no-figures", "--data-root", str(tmp_path),
         "--dataset", "fashion-mnist", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: Fashion-MNIST IDX files not found")
    assert "pass --data-root ROOT" in result.stderr and "root=ROOT" not in result.stderr.replace("--data-root ROOT", "")


def test_resume_of_a_folder_that_does_not_exist_is_an_error(tmp_path):
    """An NCGError: the command line prints it as one line with status 2 (as the tests above check)."""
    missing = tmp_path / "no-such-run"
    with pytest.raises(NCGError, match=f"--resume: the run folder {missing} does not exist"):
        _load("evolve_mnist").main(["--quick", "--no-figures", "--resume", "--out", str(missing)])
    assert not missing.exists()


class _Stop:
    """A FreeEvolve whose ``run`` raises ``error`` instead of training (a crash or Ctrl-C)."""

    def __init__(self, error: BaseException):
        self.error = error

    def __call__(self, *args, **kwargs):
        error = self.error

        class Stopped:
            def __init__(self, *a, **k):
                pass

            def load_state_dict(self, state):
                pass

            def run(self, *a, **k):
                raise error

        return Stopped()


def test_a_run_stopped_before_its_first_round_leaves_no_half_written_folder(tmp_path, monkeypatch):
    example = _load("evolve_mnist")
    monkeypatch.setattr(example, "FreeEvolve", _Stop(RuntimeError("boom")))
    new = tmp_path / "new"
    with pytest.raises(RuntimeError, match="boom"):
        example.main(["--quick", "--dataset", "digits", "--no-figures", "--out", str(new)])
    assert not new.exists()  # created by the run, removed with it
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="boom"):
        example.main(["--quick", "--dataset", "digits", "--no-figures", "--out", str(existing)])
    assert sorted(p.name for p in existing.iterdir()) == ["FAILED", "notes.txt"]
    assert (existing / "FAILED").read_text() == "RuntimeError: boom\n"
    monkeypatch.setattr(example, "FreeEvolve", _Stop(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt, match=f"before the first round was saved; no round was saved; {existing}"):
        example.main(["--quick", "--dataset", "digits", "--no-figures", "--out", str(existing)])


def test_ctrl_c_after_a_saved_round_says_how_to_resume(quick_copy, monkeypatch):
    example = _load("evolve_mnist")
    monkeypatch.setattr(example, "FreeEvolve", _Stop(KeyboardInterrupt()))
    argv = ["--quick", "--seed", "1", "--out", str(quick_copy), "--resume", "--no-figures"]
    with pytest.raises(KeyboardInterrupt) as stop:
        example.main(argv)
    [line] = str(stop.value).splitlines()
    assert line.startswith(f"interrupted; {quick_copy} holds the run up to its last saved round; continue it with: ")
    assert line.endswith(example.resume_command(argv)) and line.count("--resume") == 1
    assert (quick_copy / "model.pt").is_file()


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_ends_with_one_line_and_status_130(tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    command = [sys.executable, str(EXAMPLES / "evolve_mnist.py"), "--quick", "--start", "complete", "--neurons", "300",
               "--no-figures", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 240
    while not (out / "model.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"interrupted; {out} holds the run") and last.endswith("--resume")


def test_quick_runs_write_into_ignored_folders_only():
    from ncg.experiments.__main__ import QUICK

    quick_outs = [_load("evolve_mnist").parse_args(["--quick"]).out, QUICK["out"] + "/runs.json",
                  "results/quick/sklearn/runs.json", "results/quick/polynomial/runs.json"]
    root = EXAMPLES.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("needs a git checkout")
    result = subprocess.run(["git", "check-ignore", "--no-index", *quick_outs], cwd=root, capture_output=True, text=True)
    assert sorted(result.stdout.split()) == sorted(quick_outs)


def test_iris_csv_quick_compares_the_cli_with_the_mlp():
    result = _load("iris_csv").main(["--quick"])
    assert len(result["cli_test_accuracy"]) == 1 and 0.0 <= result["cli_mean"] <= 1.0
    assert 0.9 <= result["mlp_5fold_accuracy"] <= 1.0


def test_the_main_job_takes_a_hop_cap_a_lifted_layered_start_and_an_init(tmp_path):
    example = _load("evolve_mnist")
    data = load_dataset("digits")
    capped = example.build_model(example.parse_args(["--neurons", "12", "--reach", "3"]), data, torch.device("cpu"))
    src, dst = capped.graph.edge_index.numpy()
    between = (src >= data.num_features) & (dst < data.num_features + 12)
    assert between.any() and (dst[between] - src[between]).max() == 3 and capped.graph.allowed_layers is not None
    lifted = example.build_model(example.parse_args(["--neurons", "12", "--layers", "12", "--lift-layers"]), data,
                                 torch.device("cpu"))
    assert lifted.graph.allowed_layers is None and lifted.graph.num_edges == 64 * 12 + 12 * 10
    default = example.build_model(example.parse_args(["--neurons", "12"]), data, torch.device("cpu"))
    he = example.build_model(example.parse_args(["--neurons", "12", "--init", "he"]), data, torch.device("cpu"))
    assert torch.equal(he.graph.edge_index, default.graph.edge_index)
    assert he.graph.weight.abs().max() > 1.5 * default.graph.weight.abs().max()
    for argv, message in [(["--reach", "3", "--start", "sparse"], "--reach caps the hops of --start whole"),
                          (["--init", "he", "--start", "complete"], "--init he needs --start whole or sparse"),
                          (["--neurons", "4", "--reach", "3", "--layers", "4"], "exclude each other"),
                          (["--lift-layers"], "give --layers too")]:
        with pytest.raises(NCGError, match=message):
            example.build_model(example.parse_args(argv), data, torch.device("cpu"))
