"""Zero-cost proxies: the release's stored values recomputed, synflow against Euler's theorem for
homogeneous functions, real images taking the Gaussian batch's place, and `naap proxies`."""

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")

from naap import cli  # noqa: E402
from naap._io import read_provenance  # noqa: E402
from naap.bench.network import build_network  # noqa: E402
from naap.bench.space import scheme_from_dicts  # noqa: E402
from naap.bench.tables import PROXIES_FILE, PROXIES_SCHEMA, load_proxies, load_tables, write_dataset  # noqa: E402
from naap.rebuild import proxies, settings  # noqa: E402
from tests.conftest import REPO  # noqa: E402

DATA = REPO / "data" / "naap440"
# How far proxies computed on another CPU or PyTorch may be from ours (docs/exactness.md).
PROXIES_ELSEWHERE = 1e-6


@pytest.fixture(scope="module")
def architectures() -> pd.DataFrame:
    return load_tables(DATA).architectures.set_index("arch_id")


def scheme(architectures, arch_id):
    return scheme_from_dicts(architectures.loc[arch_id, "layers"])


@pytest.mark.parametrize("arch_id", [1, 137, 440])
def test_the_stored_proxies_are_recomputed(architectures, arch_id):
    stored, provenance = load_proxies(DATA)
    assert provenance["data_free"] and provenance["threads"] == 1
    row = stored.set_index("arch_id").loc[arch_id]
    computed = proxies.compute_proxies(scheme(architectures, arch_id), seed=provenance["seed"],
                                       batch_size=provenance["batch_size"])
    if provenance["torch"] == torch.__version__ and provenance.get("hardware") == settings.cpu_record():
        assert computed == row.to_dict()
    else:  # another PyTorch, CPU or BLAS may order its sums differently (AVX2 against AVX-512: jacob_cov 1e-9)
        assert computed == pytest.approx(row.to_dict(), rel=PROXIES_ELSEWHERE)


def test_synflow_is_the_number_of_weight_layers_times_the_output(architectures):
    """With |weights|, an all-ones input, BatchNorm at initialisation (an identity) and no residual
    connection, every activation is positive and the summed output R is homogeneous of degree 1 in
    each layer's weights: Euler gives sum(w * dR/dw) = R per layer, so synflow = (layers + 1) R."""
    arch_id = next(i for i, row in architectures.iterrows() if not row["num_skip_connections"])
    layers = scheme(architectures, arch_id)
    torch.manual_seed(proxies.SEED)
    net = build_network(layers).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
        output = float(net(torch.ones(1, 3, 32, 32, dtype=torch.float64)).sum())
    found = proxies.compute_proxies(layers)["synflow"]
    assert found == pytest.approx((len(layers) + 1) * output, rel=1e-9)


def test_real_images_take_the_place_of_the_gaussian_batch(architectures):
    layers = scheme(architectures, 25)
    data_free = proxies.compute_proxies(layers)
    generator = torch.Generator().manual_seed(proxies.SEED)
    images = torch.randn((proxies.BATCH_SIZE, 3, 32, 32), generator=generator)
    labels = torch.randint(0, 10, (proxies.BATCH_SIZE,), generator=generator)
    assert proxies.compute_proxies(layers, images, labels) == data_free
    other_generator = torch.Generator().manual_seed(7)
    other = proxies.compute_proxies(layers, torch.rand((proxies.BATCH_SIZE, 3, 32, 32), generator=other_generator),
                                    torch.randint(0, 10, (proxies.BATCH_SIZE,), generator=other_generator))
    for name in ("snip", "grad_norm", "jacob_cov", "naswot"):
        assert other[name] != data_free[name], name
    for name in ("synflow", "zen"):  # data-free by definition
        assert other[name] == data_free[name], name
    with pytest.raises(ValueError, match="images must be N x 3 x 32 x 32 with N labels"):
        proxies.compute_proxies(layers, images[:, :1], labels)


@pytest.fixture
def small(tmp_path) -> Path:
    """The first 12 architectures of NAAP-440 and their first 3 epochs, as a dataset folder without proxies."""
    tables = load_tables(DATA)
    epochs = tables.epochs[(tables.epochs["arch_id"] <= 12) & (tables.epochs["epoch"] <= 3)]
    first = tables.architectures.head(12).assign(max_accuracy=epochs.groupby("arch_id")["test_accuracy"].max().to_numpy())
    write_dataset(tables._replace(architectures=first, epochs=epochs), tmp_path / "small", {"source": "test"}, "# small")
    return tmp_path / "small"


def test_naap_proxies_writes_the_table_and_the_leaderboard_joins_it(architectures, small, tmp_path, capsys):
    assert cli.main(["proxies", str(small), "--data-free", "--quiet"]) == 0
    path = small / PROXIES_FILE
    assert pq.read_schema(path).remove_metadata().equals(PROXIES_SCHEMA)
    provenance = read_provenance(path)
    assert provenance["data_free"] and provenance["seed"] == proxies.SEED and provenance["torch"] == torch.__version__
    assert provenance["batch_size"] == proxies.BATCH_SIZE and "Gaussian" in provenance["data"]
    table = pd.read_parquet(path)
    assert table["arch_id"].tolist() == list(range(1, 13))
    assert table.iloc[3, 1:].to_dict() == proxies.compute_proxies(scheme(architectures, 4))
    out = tmp_path / "lb"
    assert cli.main(["leaderboard", str(small), "--out", str(out), "--protocol", "cv", "--budgets", "0",
                     "--predictor-set", "none", "--predictor", "zen alone", "--jobs", "1", "--quiet"]) == 0
    assert set(pd.read_parquet(out / "results.parquet")["predictor"]) == {"zen alone"}
    assert "Gaussian images" in (out / "README.md").read_text()
    capsys.readouterr()


def test_a_proxy_predictor_without_proxies_is_one_clear_line(small, tmp_path, capsys):
    code = cli.main(["leaderboard", str(small), "--out", str(tmp_path / "lb"), "--predictor-set", "none",
                     "--predictor", "zen alone", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "naap proxies" in err
    assert cli.main(["proxies", str(small)]) == 2  # --data-free or --recipe: one is required
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "one of the arguments --data-free --recipe is required" in err, err
