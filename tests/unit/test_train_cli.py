"""``ryute train`` as a user runs it (issue 17): the README's ``--out models/NAME.zip`` into a
folder that does not exist yet, a rerun after a failed run, and the README's own short series."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.train import Trainer
from lab.cli import main

TOPOLOGY = "ring:n=4"
SMALL = {"synthetic": 0, "path_hidden": 8, "path_rounds": 1, "history": 2}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder with a 288-step series (``ryute data synthetic``) and a small network's config."""
    monkeypatch.chdir(tmp_path)
    assert main(["data", "synthetic", "--topology", TOPOLOGY, "--steps", "288", "--seed", "1",
                 "--out", "tm.npz"]) == 0
    (tmp_path / "small.json").write_text(json.dumps(SMALL))
    return tmp_path


def _train(*extra: str, out: str = "models/x.zip") -> int:
    return main(["train", "--topology", TOPOLOGY, "--traffic", "tm.npz", "--out", out,
                 "--timesteps", "0", "--config", "small.json", *extra])


def _epochs(workdir: Path, name: str = "x") -> list[int]:
    lines = (workdir / "runs" / "train" / name / "metrics.jsonl").read_text().splitlines()
    return [record["step"] for record in map(json.loads, lines) if record["stage"] == "direct"]


def test_the_out_folder_is_created(workdir):
    assert _train("--epochs", "1", "--validation", "40", "--test", "40") == 0
    assert (workdir / "models" / "x.zip").is_file()


def test_an_out_folder_that_cannot_be_created_fails_before_training(workdir, capsys):
    (workdir / "models").write_text("a file, not a folder")
    assert _train("--epochs", "1", "--validation", "40", "--test", "40") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "models" in err[0] and "Traceback" not in err[0]
    assert not (workdir / "runs" / "train" / "x" / "metrics.jsonl").exists()  # nothing trained


def _fail_in_epoch(monkeypatch, failing: int) -> None:
    """The run dies in epoch ``failing`` (as a crash or a Ctrl-C would end it)."""
    real = Trainer.train_epoch

    def train_epoch(self):
        if self.epoch + 1 == failing:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)


@pytest.mark.parametrize("resume", [False, True])
def test_a_rerun_after_a_failed_run_records_every_epoch_once(workdir, monkeypatch, resume):
    split = ("--epochs", "3", "--validation", "40", "--test", "40")
    with monkeypatch.context() as patch:
        _fail_in_epoch(patch, 3)
        assert _train(*split) == 130
    assert _epochs(workdir) == [1, 2]
    assert _train(*split, *(["--resume"] if resume else [])) == 0
    assert _epochs(workdir) == [1, 2, 3]


def test_the_readmes_short_series_trains_with_the_defaults(workdir, capsys):
    """288 intervals: the default 576 + 576 held out do not fit, so shares of the series do."""
    assert _train("--epochs", "1") == 0
    from agents.model_file import read_model

    training = read_model(workdir / "models" / "x.zip")[0]["training"]
    train, validation, test = (training[key] for key in ("train", "validation", "test_held_out"))
    assert train[0] == 0 and train[1] > validation[1] - validation[0] > 0
    assert test[1] == 288 and test[1] - test[0] > 0
    assert "--validation" in capsys.readouterr().err


def test_sizes_given_that_do_not_fit_name_the_options(workdir, capsys):
    assert _train("--epochs", "1", "--validation", "200", "--test", "100") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--validation" in err[0] and "--test" in err[0]


def test_log_dir_gets_tensorboard_events(workdir):
    """The tensorboard extra (scripts/setup.sh installs it) makes --log-dir write event files
    beside metrics.jsonl, with the epochs' scalars in them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert _train("--epochs", "2", "--validation", "40", "--test", "40",
                  "--log-dir", "runs/tb") == 0
    events = EventAccumulator(str(workdir / "runs" / "tb"))
    events.Reload()
    assert [event.step for event in events.Scalars("direct/loss")] == [1, 2]
    assert (workdir / "runs" / "tb" / "metrics.jsonl").is_file()


def test_train_reports_its_wall_time_with_the_data_preparation(workdir, capsys):
    import time

    started = time.perf_counter()
    assert _train("--epochs", "1", "--validation", "40", "--test", "40") == 0
    elapsed = time.perf_counter() - started
    from agents.model_file import read_model

    training = read_model(workdir / "models" / "x.zip")[0]["training"]
    assert training["seconds"] <= training["wall_seconds"] <= elapsed + 0.1
    assert f"in {training['wall_seconds']:.0f} s (training" in capsys.readouterr().out



def test_the_data_preparation_reports_each_lp_optimum_it_solves(tmp_path):
    from agents.data import build_samples, decision_times
    from sim.envs.encoding import Encoding
    from sim.paths import PathSet
    from topologies.catalog import load_topology
    from topologies.traffic import synthetic_traffic

    graph = load_topology("ring:n=5")
    series = synthetic_traffic(graph, steps=20, seed=3)
    encoding = Encoding(PathSet.from_graph(graph, k=4), 1.0, 3, 5.0)
    times = decision_times(encoding, series, 0, 20)
    calls: list[tuple[int, int]] = []
    build_samples(encoding, graph, series, times, tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1] == (len(times), len(times))  # one per LP, a fresh cache
    calls.clear()
    build_samples(encoding, graph, series, times, tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert calls == []  # cached: nothing solved, nothing reported
