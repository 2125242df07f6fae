"""`naap dataset` against careless and hostile use: every mistake is one line `naap: error: FILE:
FIELD: ...` with exit code 2, found before any training, with nothing outside --out changed;
links, read-only folders, full disks, leftovers, --limit, --estimate and reruns.

The runs are in-process (naap.cli.main) so that a test can see whether training started and can
fill the disk; the recipe is recipes/smoke.yaml (synthetic data, seconds).
"""
import errno
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from naap._io import read_provenance
from naap.cli import main
from naap.rebuild import strategies
from naap.escape import markdown
from tests.runs import SMOKE, assert_same_data, dataset, recipe_variant, snapshot


@pytest.fixture
def run(workdir, monkeypatch):
    """main(["dataset", ...]) in `workdir`, recording whether any training started."""
    monkeypatch.chdir(workdir)
    trainings = []
    real = strategies.train

    def recorded(*args, **kwargs):
        trainings.append(args[3])
        return real(*args, **kwargs)
    monkeypatch.setattr(strategies, "train", recorded)

    def run_(*argv) -> int:
        return main(["dataset", *map(str, argv)])
    run_.trainings = trainings
    return run_


@pytest.fixture
def started(smoke_run, tmp_path) -> Path:
    """A folder naap made, with work left: two parts missing and no merged tables yet."""
    out = Path(shutil.copytree(smoke_run, tmp_path / "out"))
    for name in ("architectures.parquet", "epochs.parquet", "DATASET.md"):
        (out / name).unlink()
    for part in sorted((out / "parts").iterdir())[:2]:
        part.unlink()
    return out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("naap: error: ") and "Traceback" not in err, err
    return err.removeprefix("naap: error: ")


@contextmanager
def read_only(folder: Path):
    """`folder` read-only for this process: by its mode, or for root (whom modes do not stop) by a
    read-only bind mount where root may mount."""
    if os.geteuid() != 0:
        paths = [folder, *folder.rglob("*")]
        for path in paths:
            path.chmod(path.stat().st_mode & ~0o222)
        try:
            yield
        finally:
            for path in paths:
                path.chmod(path.stat().st_mode | 0o200)
        return
    mounted = subprocess.run(["mount", "--bind", folder, folder], capture_output=True).returncode == 0
    if not mounted or subprocess.run(["mount", "-o", "remount,ro,bind", folder], capture_output=True).returncode:
        if mounted:
            subprocess.run(["umount", folder])
        pytest.skip("running as root without the right to mount: no folder can be made read-only for root")
    try:
        yield
    finally:
        subprocess.run(["umount", folder], check=True)


# --- links, files and folders that are not what naap made --------------------------------

@pytest.mark.parametrize("name", ["parts", "checkpoints", "locks", "recipe.yaml", "architectures.parquet",
                                  "parts/arch0004-seed20220820.parquet"])
def test_a_symbolic_link_in_dir_is_refused_before_anything(name, started, tmp_path, run, capsys):
    elsewhere = tmp_path / "elsewhere"
    target = started / name
    if target.exists():
        shutil.move(target, elsewhere)
    else:
        elsewhere.mkdir() if "." not in name else elsewhere.write_text("someone's file")
    target.symlink_to(elsewhere)
    before = snapshot(tmp_path)
    assert run(SMOKE, "--out", started) == 2
    assert one_error_line(capsys).startswith(f"{started / name}: a symbolic link; naap writes only inside --out")
    assert snapshot(tmp_path) == before and run.trainings == []


def test_out_that_is_a_file_is_refused(tmp_path, run, capsys):
    (tmp_path / "file").write_text("notes")
    before = snapshot(tmp_path)
    assert run(SMOKE, "--out", tmp_path / "file") == 2
    assert one_error_line(capsys) == f"{tmp_path / 'file'}: --out: a file, not a folder"
    assert snapshot(tmp_path) == before and run.trainings == []


@pytest.mark.parametrize("args, message", [
    (("--engine", "cohort", "--strategy", "ddp"),
     "--engine: cohort needs the shard strategy (ddp trains one network on every rank); use engine eager"),
    (("--engine", "cohort", "--cohort-size", "5000"), "--cohort-size: at most 4096, got 5000"),
])
def test_an_engine_the_launch_cannot_run_is_refused_before_anything(args, message, tmp_path, run, capsys, monkeypatch):
    monkeypatch.setattr("naap.rebuild.build.load_dataset", lambda *a, **k: pytest.fail("data loaded"))
    before = snapshot(tmp_path)
    assert run(SMOKE, "--out", tmp_path / "out", *args) == 2
    assert one_error_line(capsys) == message
    assert snapshot(tmp_path) == before and run.trainings == []


def test_a_read_only_out_is_refused_before_the_data_is_loaded(started, tmp_path, run, capsys, monkeypatch):
    monkeypatch.setattr("naap.rebuild.build.load_dataset", lambda *a, **k: pytest.fail("data loaded"))
    with read_only(started):
        before = snapshot(tmp_path)
        assert run(SMOKE, "--out", started) == 2
        assert one_error_line(capsys).startswith(f"{started}: --out: not writable")
        assert snapshot(tmp_path) == before


def test_a_rerun_on_a_complete_folder_does_nothing_even_read_only(smoke_run, tmp_path, run, capsys):
    out = Path(shutil.copytree(smoke_run, tmp_path / "out"))
    with read_only(out):
        before = snapshot(tmp_path)
        assert run(SMOKE, "--out", out) == 0
        assert capsys.readouterr().out.strip() == f"{out} is complete: 4 architectures; nothing to do"
        assert snapshot(tmp_path) == before and run.trainings == []


# --- recipe values that cannot be written are found before the first step ----------------------

@pytest.mark.parametrize("change, field", [
    ({"search_space__positions": [{"kernel_size": [3], "width": [8, 16, 24, 32], "stride": [200],
                                  "residual": [False]} for _ in range(3)]},
     "search_space.positions"),
    ({"training__seeds": [2**63]}, "training.seeds"),
    ({"training__epochs": 40_000}, "training.epochs"),
])
def test_a_recipe_value_the_tables_cannot_hold_fails_before_training(change, field, tmp_path, run, capsys):
    recipe = recipe_variant(tmp_path, "bad.yaml", **change)
    before = snapshot(tmp_path)
    assert run(recipe, "--out", tmp_path / "out") == 2
    assert one_error_line(capsys).startswith(f"{recipe}: {field}")
    assert snapshot(tmp_path) == before and run.trainings == []


# --- --limit never replaces a fuller result ---------------------------------------------------

def test_limit_on_a_complete_folder_changes_nothing(smoke_run, tmp_path, run, capsys):
    out = Path(shutil.copytree(smoke_run, tmp_path / "out"))
    before = snapshot(tmp_path)
    assert run(SMOKE, "--out", out, "--limit", "2") == 0
    assert capsys.readouterr().out.strip() == f"{out} is complete: 4 architectures; nothing to do"
    assert snapshot(tmp_path) == before and run.trainings == []


def test_limit_on_a_fuller_folder_trains_what_is_missing_and_keeps_its_tables(smoke_run, tmp_path, run, capsys):
    out = Path(shutil.copytree(smoke_run, tmp_path / "out"))
    (out / "parts" / "arch0001-seed20220819.parquet").unlink()
    tables = {name: snapshot(out)[name] for name in ("architectures.parquet", "epochs.parquet", "DATASET.md")}
    assert run(SMOKE, "--out", out, "--limit", "2") == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"trained 1 job(s) of the first 2 architectures; the merged tables of 4 architectures in {out} are kept "
        f"(a --limit run never replaces fuller ones)")
    assert {name: snapshot(out)[name] for name in tables} == tables and len(run.trainings) == 1
    assert_same_data(smoke_run, out)


def test_a_limited_merge_is_marked_and_replaced_by_a_full_run_never_the_reverse(smoke_run, tmp_path, run, capsys):
    out = tmp_path / "out"
    assert run(SMOKE, "--out", out, "--limit", "2") == 0
    limited = read_provenance(out / "architectures.parquet")
    assert limited["limit"] == 2 and limited["architectures"] == 2
    assert "A --limit try: the first 2 of the recipe's 4 architectures" in (out / "DATASET.md").read_text()
    assert run(SMOKE, "--out", out) == 0
    assert read_provenance(out / "architectures.parquet")["limit"] is None
    assert_same_data(smoke_run, out)
    before = snapshot(out)
    assert run(SMOKE, "--out", out, "--limit", "3") == 0
    assert snapshot(out) == before
    capsys.readouterr()


# --- leftovers, full disks, --estimate ---------------------------------------------------------

def test_leftovers_of_a_killed_merge_are_tidied_at_start_and_the_run_completes(started, smoke_run, run, monkeypatch):
    leftovers = [started / ".architectures.parquet.k1ll3d.tmp", started / ".epochs.parquet.x.tmp",
                 started / ".DATASET.md.y.tmp"]
    for path in leftovers:
        path.write_text("half a file")
    seen_at_first_training = []
    real = strategies.train

    def first(*args, **kwargs):
        seen_at_first_training.append([p for p in leftovers if p.exists()])
        return real(*args, **kwargs)
    monkeypatch.setattr(strategies, "train", first)
    assert run(SMOKE, "--out", started) == 0
    assert seen_at_first_training[0] == []
    assert_same_data(smoke_run, started)
    assert sorted(p.name for p in started.rglob("*") if p.name.endswith(".tmp")) == []


@pytest.mark.parametrize("target", ["parts/arch0001-seed20220819.parquet", "checkpoints/arch0001-seed20220819.pt",
                                   "epochs.parquet"])
def test_a_full_disk_is_one_line_naming_the_file_and_the_same_command_resumes(target, started, smoke_run, run,
                                                                              capsys, monkeypatch):
    for part in ("arch0001-seed20220819", "arch0004-seed20220820"):
        (started / "parts" / f"{part}.parquet").unlink(missing_ok=True)
    fsync = os.fsync

    def full(fd):
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(f".{Path(target).name}."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)
    monkeypatch.setattr(os, "fsync", full)
    assert run(SMOKE, "--out", started) == 2
    assert one_error_line(capsys) == f"{started / target}: cannot write it (No space left on device)"
    assert [p for p in started.rglob("*") if p.name.endswith(".tmp")] == []
    monkeypatch.setattr(os, "fsync", fsync)
    assert run(SMOKE, "--out", started) == 0
    assert_same_data(smoke_run, started)


def test_estimate_writes_nothing_in_dir_or_outside_it(started, tmp_path, run, capsys):
    before = snapshot(tmp_path)
    assert run(SMOKE, "--out", started, "--estimate") == 0
    assert run(SMOKE, "--out", tmp_path / "new", "--estimate") == 0
    assert "optimizer steps" in capsys.readouterr().out
    assert snapshot(tmp_path) == before and run.trainings == []


def test_a_device_out_of_memory_is_one_line_naming_the_recipe_field(started, run, capsys, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(strategies, "train", out_of_memory)
    assert run(SMOKE, "--out", started, "--trainings-per-device", "2") == 2
    err = one_error_line(capsys)
    assert err.startswith(f"{SMOKE}: runner.trainings_per_device: arch")
    assert err.endswith("ran out of memory on cpu with 2 training(s) at once; ask for fewer (--trainings-per-device)")


def test_a_recipe_name_lands_in_dataset_md_as_text_not_markup(workdir):
    """A recipe's name is the card's heading: HTML, a table pipe, a link and a second heading in it
    stay text (escaped for Markdown), on one line."""
    name = "<img src=x onerror=alert(1)> | [click](javascript:alert(2)) # not a heading"
    recipe = recipe_variant(workdir, "hostile-name.yaml", recipe_name=name)
    card = (dataset(workdir, recipe, "hostile-name") / "DATASET.md").read_text()
    heading = card.splitlines()[0]
    assert heading == f"# {markdown(name)}" and "<img" not in card and "&lt;img" in heading
    assert "\\|" in heading and "\\[click\\]" in heading and [line for line in card.splitlines() if line.startswith("#")] == [heading]
