import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest

import naap
from naap._io import atomic_write, read_provenance
from naap.bench.tables import ARCHITECTURES_SCHEMA, EPOCHS_SCHEMA, load_tables, write_dataset
from naap.errors import NaapError
from naap.rebuild.recipe import load_recipe
from naap.rebuild.release import export_csv, import_release, release_card
from tests.conftest import REPO

DATA = REPO / "data" / "naap440"
RECIPE = load_recipe(REPO / "recipes" / "naap440.yaml")


def test_committed_parquet_equals_a_fresh_import(release_dir, tmp_path):
    tables, provenance = import_release(release_dir, RECIPE)
    write_dataset(tables, tmp_path, provenance, release_card(tables, provenance))
    for name in ("architectures.parquet", "epochs.parquet"):
        assert pq.read_table(DATA / name).equals(pq.read_table(tmp_path / name)), name
        assert read_provenance(DATA / name) == read_provenance(tmp_path / name)
    assert (DATA / "DATASET.md").read_text() == (tmp_path / "DATASET.md").read_text()


def test_export_reproduces_the_published_csv_byte_for_byte(release_dir, tmp_path):
    export_csv(load_tables(DATA), tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_bytes() == (release_dir / "naap440.csv").read_bytes()


def test_load_wide_equals_the_published_csv(release_dir):
    pd.testing.assert_frame_equal(naap.load_wide(DATA), pd.read_csv(release_dir / "naap440.csv"),
                                  check_dtype=False)


def test_pandas_alone_opens_the_tables_with_the_declared_schemas():
    epochs = pd.read_parquet(DATA / "epochs.parquet")
    assert len(epochs) == 440 * 90 and epochs.groupby("arch_id")["epoch"].agg(list).map(
        lambda e: e == list(range(1, 91))).all()
    assert pq.read_schema(DATA / "epochs.parquet").remove_metadata().equals(EPOCHS_SCHEMA)
    assert pq.read_schema(DATA / "architectures.parquet").remove_metadata().equals(ARCHITECTURES_SCHEMA)
    arch = pd.read_parquet(DATA / "architectures.parquet")
    assert arch["layers"][0][0] == {"kernel_size": 3, "width": 12, "stride": 2, "residual": False}
    assert epochs[epochs["epoch"] <= 3]["lr"].tolist()[:3] == pytest.approx([0.1, 0.01, 0.001])
    assert epochs[["test_loss", "train_accuracy", "epoch_seconds"]].isna().all().all()
    provenance = read_provenance(DATA / "epochs.parquet")
    assert provenance["recipe"]["name"] == "naap440" and "MIT" in provenance["source"]


def copy_release(release_dir, tmp_path):
    shutil.copytree(release_dir, tmp_path / "release")
    return tmp_path / "release"


def test_a_count_that_disagrees_with_its_scheme_is_refused(release_dir, tmp_path):
    bad = copy_release(release_dir, tmp_path)
    wide = pd.read_csv(bad / "naap440.csv")
    wide.loc[6, "NumMACs"] += 1
    wide.to_csv(bad / "naap440.csv", index=False)
    with pytest.raises(NaapError, match=r"naap440.csv: ModelId 7: column 'NumMACs' is \d+, the scheme gives"):
        import_release(bad, RECIPE)


@pytest.mark.parametrize("column", ["IsTest", "e5Accuracy"])
def test_a_missing_or_empty_column_is_named(release_dir, tmp_path, column):
    bad = copy_release(release_dir, tmp_path)
    wide = pd.read_csv(bad / "naap440.csv")
    if column == "IsTest":
        wide = wide.drop(columns=column)
    else:
        wide.loc[3, column] = None
    wide.to_csv(bad / "naap440.csv", index=False)
    with pytest.raises(NaapError, match=f"naap440.csv: .*column '{column}'"):
        import_release(bad, RECIPE)


def test_a_scheme_without_a_field_is_named(release_dir, tmp_path):
    bad = copy_release(release_dir, tmp_path)
    text = (bad / "generated_schemes.json").read_text().replace('"stride": 2,', "", 1)
    (bad / "generated_schemes.json").write_text(text)
    with pytest.raises(NaapError, match="generated_schemes.json: scheme 0 layer 0: missing field 'stride'"):
        import_release(bad, RECIPE)


def test_corrupt_or_wrong_schema_parquet_is_named(tmp_path):
    shutil.copytree(DATA, tmp_path / "d")
    (tmp_path / "d" / "epochs.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(NaapError, match="epochs.parquet: not a readable Parquet file"):
        load_tables(tmp_path / "d")
    shutil.copy(DATA / "epochs.parquet", tmp_path / "d" / "epochs.parquet")
    pq.write_table(pq.read_table(DATA / "architectures.parquet").drop(["num_macs"]),
                   tmp_path / "d" / "architectures.parquet")
    with pytest.raises(NaapError, match="architectures.parquet: missing column 'num_macs'"):
        load_tables(tmp_path / "d")


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")

    def half_write(tmp):
        open(tmp, "w").write("half")
        raise OSError("disk full")

    with pytest.raises(NaapError, match=f"{target}: cannot write it"):
        atomic_write(target, half_write)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["t.txt"]
