"""Static shards for job arrays: `naap dataset --shard I/N` trains the jobs whose index % N == I
and writes only parts; `naap merge DIR` checks that every part is in and writes the tables,
the same, bit for bit, as one plain run."""
import argparse
import shutil
from pathlib import Path

import pytest

from naap._io import read_provenance
from naap.cli import main
from naap.rebuild.jobs import Shard, make_plan
from naap.rebuild.recipe import load_recipe
from tests.runs import SMOKE, assert_same_data, dataset, finish, naap, snapshot


@pytest.fixture(scope="module")
def plain(workdir):
    return dataset(workdir, SMOKE, "plain")


@pytest.fixture(scope="module")
def half(workdir):
    """A folder where shard 0/2 alone has run."""
    out = finish(naap(workdir, "dataset", SMOKE, "--out", "half", "--shard", "0/2"))
    assert "shard 0/2: all its parts are in; 4 of 8 parts in" in out and "naap merge" in out
    return workdir / "half"


def test_two_concurrent_shards_then_naap_merge_give_the_tables_of_one_plain_run(workdir, plain, capsys):
    shards = [naap(workdir, "dataset", SMOKE, "--out", "sharded", "--shard", f"{i}/2") for i in range(2)]
    for shard in shards:
        finish(shard)
    out = workdir / "sharded"
    assert not (out / "architectures.parquet").exists()  # shards never merge
    for part in (out / "parts").glob("*.parquet"):
        record = read_provenance(part)
        index = next(j.index for j in make_plan(load_recipe(SMOKE)).jobs
                     if (j.arch_id, j.seed) == (record["arch_id"], record["seed"]))
        assert record["shard"] == f"{index % 2}/2" and record["flock_claims"] is False

    assert main(["merge", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}: 4 architectures")
    assert_same_data(plain, out)
    assert read_provenance(out / "architectures.parquet")["shards"] == ["0/2", "1/2"]


def test_merge_of_an_incomplete_folder_names_the_missing_parts_and_writes_nothing(half, capsys):
    before = snapshot(half)
    assert main(["merge", str(half)]) == 2
    err = capsys.readouterr().err.strip()
    # the jobs of shard 1/2: index 1, 3, 5, 7 = every architecture with the second seed
    missing = ", ".join(f"arch{a:04d}-seed20220820" for a in (1, 2, 3, 4))
    assert err == f"naap: error: {half / 'parts'}: 4 of 8 parts missing ({missing}); " \
                  f"run the shards that train them (the same command resumes), then merge again"
    assert snapshot(half) == before


def test_a_shard_run_again_and_a_merge_of_a_complete_folder_do_nothing(half, tmp_path, capsys):
    half = Path(shutil.copytree(half, tmp_path / "half"))
    before = snapshot(half)
    assert main(["dataset", str(SMOKE), "--out", str(half), "--shard", "0/2"]) == 0
    assert "shard 0/2: all its parts are in" in capsys.readouterr().out
    assert snapshot(half) == before

    assert main(["dataset", str(SMOKE), "--out", str(half), "--shard", "1/2"]) == 0
    assert main(["merge", str(half)]) == 0
    merged = snapshot(half)
    assert main(["merge", str(half)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{half} is complete: 4 architectures; nothing to do"
    assert snapshot(half) == merged


@pytest.mark.parametrize("text, expected", [("0/1", Shard(0, 1)), ("3/4", Shard(3, 4))])
def test_shard_parses_i_of_n(text, expected):
    assert Shard.parse(text) == expected


@pytest.mark.parametrize("text", ["2/2", "-1/2", "1", "a/b", "1/0", ""])
def test_shard_refuses_what_is_not_i_of_n(text):
    with pytest.raises(argparse.ArgumentTypeError):
        Shard.parse(text)


def test_the_shards_of_a_recipe_are_disjoint_and_cover_every_job():
    jobs = make_plan(load_recipe(SMOKE)).jobs
    taken = [[job for job in jobs if Shard(i, 3).takes(job)] for i in range(3)]
    assert sorted(j.index for share in taken for j in share) == list(range(len(jobs)))
    assert [j.index for j in taken[1]] == [1, 4, 7]


def test_shard_with_limit_is_refused_in_one_line(tmp_path, capsys):
    assert main(["dataset", str(SMOKE), "--out", str(tmp_path / "out"), "--shard", "0/2", "--limit", "2"]) == 2
    assert capsys.readouterr().err.strip() == "naap: error: --limit: not with --shard (the shards of a recipe build all of it)"
    assert not (tmp_path / "out").exists()


def test_merge_of_a_folder_naap_did_not_make_is_one_line(tmp_path, capsys):
    assert main(["merge", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"naap: error: {tmp_path / 'recipe.yaml'}: not found; {tmp_path} is not a folder made by `naap dataset`"
