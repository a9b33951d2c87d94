"""The one run-directory rule (sim.runs): $RYUTE_RUNS, else runs/ in the working directory."""
import os

from sim.runs import RUNS_ENV, run_dir, runs_root


def test_runs_go_under_the_working_directory_unless_ryute_runs_says_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv(RUNS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert runs_root().resolve() == tmp_path / "runs"
    assert run_dir("train", "abilene") == runs_root() / "train" / "abilene"
    monkeypatch.setenv(RUNS_ENV, str(tmp_path / "elsewhere"))
    assert run_dir("emulate", "x") == tmp_path / "elsewhere" / "emulate" / "x"
    assert not (tmp_path / "elsewhere").exists()  # named, not created


def test_a_default_run_folder_is_unique_to_the_process(monkeypatch, tmp_path):
    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    folder = run_dir("emulate")
    assert folder.parent == tmp_path / "emulate" and folder.name.endswith(f"-{os.getpid()}")


def test_the_testbed_keeps_its_records_and_logs_by_the_same_rule(monkeypatch, tmp_path):
    from lab.testbed import Testbed

    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    testbed = Testbed("ring:n=5")  # not entered: nothing starts
    assert (testbed.run_dir, testbed.log_dir) == (tmp_path / "testbeds", tmp_path / "logs")
