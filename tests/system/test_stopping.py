"""Stopping `naap dataset`: SIGTERM and Ctrl-C stop every training at its next epoch, keep the
checkpoints, leave no temporary file, say so in one line and exit 143 / 130; so does a failing
training for the others beside it. The same command resumes to identical data. Under torchrun
a run prints one line whatever happens, not one per rank. Real processes and signals, except
for the failing training (in-process, to make it fail).

The signals are sent on events, never after a fixed sleep, so that the tests hold on a loaded
machine: a checkpoint file (a training is CHECKPOINT_EVERY_EPOCHS epochs in, with many more to
go), or naap's own SIGTERM handler installed (its main() has begun)."""
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from naap._io import read_provenance
from naap.cli import main
from naap.rebuild import strategies
from naap.rebuild.jobs import make_plan
from naap.rebuild.recipe import load_recipe
from naap.rebuild.settings import CHECKPOINT_EVERY_EPOCHS
from tests.runs import SMOKE, assert_same_data, dataset, finish, naap, recipe_variant


EPOCHS = 2 * CHECKPOINT_EVERY_EPOCHS + 4  # a checkpoint at 10 epochs in leaves 14 more before the job's end


@pytest.fixture(scope="module")
def long_recipe(workdir) -> Path:
    """The smoke recipe with 24 epochs and one seed: 4 jobs, each lasting a few seconds and
    checkpointing twice."""
    return recipe_variant(workdir, "long.yaml", training__epochs=EPOCHS, training__seeds=[20220819])


@pytest.fixture(scope="module")
def baseline(workdir, long_recipe) -> Path:
    return dataset(workdir, long_recipe, "baseline")


def wait_for_a_checkpoint(run, out: Path) -> None:
    """Until a training has written its first checkpoint: it is CHECKPOINT_EVERY_EPOCHS epochs in
    and has EPOCHS - CHECKPOINT_EVERY_EPOCHS to go, so a signal now finds it training however
    slowly this machine runs (an epoch takes longer under load, and so does the rest)."""
    while not list((out / "checkpoints").glob("*.pt")):
        assert run.poll() is None, run.communicate()
        time.sleep(0.02)


def wait_for_naap_main(run) -> None:
    """Until the process has installed naap's SIGTERM handler (naap.cli.main has begun; Python
    installs none itself): a SIGINT now is naap's to handle, not the interpreter's start-up's."""
    sigterm = 1 << (signal.SIGTERM - 1)
    status = Path(f"/proc/{run.pid}/status")
    while True:
        assert run.poll() is None, run.communicate()
        caught = next(line for line in status.read_text().splitlines() if line.startswith("SigCgt:"))
        if int(caught.split()[1], 16) & sigterm:
            return
        time.sleep(0.005)


def naap_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("naap:")]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_stops_at_the_next_epoch_keeps_checkpoints_and_the_same_command_resumes(
        workdir, long_recipe, baseline, sig):
    """The terminal closing (SIGHUP) must not orphan trainings or lose them: it stops the run
    as SIGTERM does, with its checkpoints, exit 128 + the signal's number."""
    out = workdir / f"stopped-by-{sig.name}"
    run = naap(workdir, "dataset", long_recipe, "--out", out)
    wait_for_a_checkpoint(run, out)
    run.send_signal(sig)
    _, err = run.communicate(timeout=120)
    kept = sorted(p.stem for p in (out / "checkpoints").glob("*.pt"))
    assert run.returncode == 128 + sig and kept, err
    assert err.strip() == (f"naap: interrupted ({sig.name}): {len(kept)} checkpoint(s) kept in "
                           f"{out / 'checkpoints'}; run the same command to resume")
    assert [p for p in out.rglob("*") if p.name.endswith(".tmp")] == [] and not (out / "epochs.parquet").exists()

    finish(naap(workdir, "dataset", long_recipe, "--out", out))
    assert_same_data(baseline, out)
    for name in kept:  # they went on from the epoch they stopped at
        assert read_provenance(out / "parts" / f"{name}.parquet")["resumed_epochs"] >= 1


def test_a_second_signal_while_the_trainings_stop_is_noted_and_the_stop_completes(workdir, long_recipe):
    out = workdir / "twice"
    run = naap(workdir, "dataset", long_recipe, "--out", out)
    wait_for_a_checkpoint(run, out)
    run.send_signal(signal.SIGTERM)
    time.sleep(0.02)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    kept = list((out / "checkpoints").glob("*.pt"))
    assert run.returncode == 143 and kept, err
    assert err.splitlines() == [
        "naap: stopping at the end of the current epochs, with their checkpoints; kill -9 stops at once "
        "(the earlier checkpoints are kept)",
        f"naap: interrupted (SIGTERM): {len(kept)} checkpoint(s) kept in {out / 'checkpoints'}; "
        f"run the same command to resume"]
    assert [p for p in out.rglob("*") if p.name.endswith(".tmp")] == []


def test_ctrl_c_during_start_up_is_one_line_and_exit_130(workdir):
    run = naap(workdir, "dataset", SMOKE, "--out", "early")
    wait_for_naap_main(run)  # naap's main() has begun; torch is still to be imported
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130 and err.strip() == "naap: interrupted (SIGINT)", err
    assert not list((workdir / "early").glob("parts/*"))


def test_sigterm_to_torchrun_is_one_line_from_rank_0_and_a_plain_run_resumes(workdir, long_recipe, baseline):
    out = workdir / "torchrun-terminated"
    run = naap(workdir, "dataset", long_recipe, "--out", out, ranks=2)
    wait_for_a_checkpoint(run, out)
    run.send_signal(signal.SIGTERM)  # torchrun passes it on to its workers
    _, err = run.communicate(timeout=120)
    assert run.returncode != 0
    lines = naap_lines(err)
    assert len(lines) == 1 and lines[0].startswith("naap: interrupted (SIGTERM)"), err
    assert [p for p in out.rglob("*") if p.name.endswith(".tmp")] == []
    finish(naap(workdir, "dataset", long_recipe, "--out", out))
    assert_same_data(baseline, out)


def test_a_failing_rank_prints_one_line_naming_the_file_and_the_others_stop_quietly(workdir):
    out = workdir / "failing"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copyfile(SMOKE, out / "recipe.yaml")
    damaged = out / "checkpoints" / "arch0002-seed20220819.pt"
    damaged.write_bytes(b"not a checkpoint")
    run = naap(workdir, "dataset", SMOKE, "--out", out, ranks=2)
    _, err = run.communicate(timeout=300)
    assert run.returncode != 0
    lines = naap_lines(err)
    assert len(lines) == 1 and lines[0].startswith("naap: error: rank ") and f"{damaged}: unreadable checkpoint" in \
        lines[0], err
    package = str(Path(strategies.__file__).parents[1])  # no traceback through naap's own code
    assert package not in "".join(line for line in err.splitlines() if line.strip().startswith("File "))


def test_a_failing_training_stops_the_other_at_its_next_epoch_and_its_checkpoint_resumes(workdir, long_recipe,
                                                                                         baseline, monkeypatch):
    failing, other = make_plan(load_recipe(long_recipe)).jobs[:2]
    real = strategies.train
    other_epochs, failed_at = [], []
    other_started = threading.Event()

    def train(scheme, data, training, seed, *, on_epoch, **kwargs):
        def hook(metrics):
            on_epoch(metrics)
            if (scheme, seed) == (failing.scheme, failing.seed):
                assert other_started.wait(60)
                failed_at.append(len(other_epochs))
                raise RuntimeError("a training fails in its first epoch")
            if (scheme, seed) == (other.scheme, other.seed):
                other_epochs.append(metrics.epoch)
                other_started.set()
        return real(scheme, data, training, seed, on_epoch=hook, **kwargs)

    monkeypatch.setattr(strategies, "train", train)
    monkeypatch.chdir(workdir)
    out = workdir / "failed"
    with pytest.raises(RuntimeError, match="fails in its first epoch"):
        main(["dataset", str(long_recipe), "--out", str(out), "--trainings-per-device", "2"])
    # The other training stopped at the epoch after the failure (not at the end of its EPOCHS),
    # and its checkpoint holds every epoch it finished.
    assert len(other_epochs) <= failed_at[0] + 1 < EPOCHS
    kept = torch.load(out / "checkpoints" / f"{other.name}.pt", weights_only=True)
    assert len(kept["epochs"]) == len(other_epochs)
    assert not (out / "parts" / f"{other.name}.parquet").exists()

    monkeypatch.setattr(strategies, "train", real)
    assert main(["dataset", str(long_recipe), "--out", str(out)]) == 0
    assert read_provenance(out / "parts" / f"{other.name}.parquet")["resumed_epochs"] == len(other_epochs)
    assert_same_data(baseline, out)


def test_a_stopped_cohort_run_resumes_in_other_cohorts_to_the_same_data(workdir, long_recipe, baseline):
    """Cohorts of 2, one at a time, stopped by SIGTERM during the first; resumed as one cohort of
    4, which joins members stopped at different epochs (10 or more, and 0): the eager run's data."""
    out = workdir / "cohorts"
    run = naap(workdir, "dataset", long_recipe, "--out", out, "--engine", "cohort", "--cohort-size", 2,
               "--trainings-per-device", 1)
    wait_for_a_checkpoint(run, out)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    kept = sorted(p.stem for p in (out / "checkpoints").glob("*.pt"))
    assert run.returncode == 143 and len(kept) == 2, err
    finish(naap(workdir, "dataset", long_recipe, "--out", out, "--engine", "cohort", "--cohort-size", 4))
    assert_same_data(baseline, out)
    records = {p.stem: read_provenance(p) for p in (out / "parts").glob("*.parquet")}
    assert {(r["engine"], r["cohort_size"]) for r in records.values()} == {("cohort", 4)}
    assert sorted(r["resumed_epochs"] >= CHECKPOINT_EVERY_EPOCHS for r in records.values()) == [False, False, True, True]
    assert all(records[name]["resumed_epochs"] >= CHECKPOINT_EVERY_EPOCHS for name in kept)
