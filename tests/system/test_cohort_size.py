"""`--cohort-size auto` and runner.cohort_size auto (the default) through `naap dataset`: on the CPU a cohort
is 4 networks, said once per rank and recorded with its rule in every part; a bad value is one line."""
from naap._io import read_provenance
from tests.runs import SMOKE, naap, recipe_variant


def test_auto_is_the_default_and_gives_cohorts_of_4_on_the_cpu(tmp_path):
    """smoke: two seeds of 4 jobs. The parts' records against the cohorts the jobs form (4 per seed).
    (A fixed --cohort-size is recorded as "fixed": tests/system/test_launches.py.)"""
    for name, args in (("default", ()), ("asked", ("--cohort-size", "auto"))):
        run = naap(tmp_path, "dataset", SMOKE, "--out", tmp_path / name, "--engine", "cohort", *args)
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
        assert err.count("cohort size") == 1 and "rank 0: cohort size 4 (auto: cpu) on cpu" in err, name
        records = [read_provenance(p) for p in sorted((tmp_path / name / "parts").glob("*.parquet"))]
        assert len(records) == 8
        assert {(r["cohort_size"], r["cohort_size_rule"], r["cohort_size_measured"]) for r in records} == {
            (4, "auto: cpu", None)}, name


def test_a_bad_cohort_size_is_one_line_naming_where_it_is(tmp_path):
    run = naap(tmp_path, "dataset", SMOKE, "--out", tmp_path / "out", "--engine", "cohort", "--cohort-size", "most")
    _, err = run.communicate(timeout=600)
    assert run.returncode == 2 and "--cohort-size: must be a whole number >= 1, got 'most'" in err
    recipe = recipe_variant(tmp_path, "bad", runner__cohort_size="most")
    run = naap(tmp_path, "dataset", recipe, "--out", tmp_path / "out", "--engine", "cohort")
    _, err = run.communicate(timeout=600)
    assert run.returncode == 2
    assert err == f"naap: error: {recipe}: runner.cohort_size: must be auto or an int, got 'most'\n"
    assert not (tmp_path / "out").exists()
