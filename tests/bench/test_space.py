import itertools
import json
import random

import pytest

from naap.bench.space import (
    Generator,
    Layer,
    PositionOptions,
    SearchSpace,
    count_schemes,
    enumerate_schemes,
    generate_schemes,
    iter_schemes,
    sample_schemes,
    scheme_features,
    scheme_from_dicts,
    scheme_hash,
    scheme_to_dicts,
)
from naap.errors import NaapError
from naap.rebuild.recipe import load_recipe
from tests.conftest import REPO

SPACE = load_recipe(REPO / "recipes" / "naap440.yaml").search_space


def test_enumeration_yields_the_published_schemes_in_order(release_dir):
    published = json.loads((release_dir / "generated_schemes.json").read_text())
    assert [scheme_to_dicts(s) for s in enumerate_schemes(SPACE)] == published


def test_every_enumerated_scheme_obeys_the_constraints():
    schemes = enumerate_schemes(SPACE)
    assert len(set(schemes)) == len(schemes)
    for s in schemes:
        assert 3 <= len(s) <= 4 and sum(l.stride == 2 for l in s) <= 3
        for prev, layer in zip(s, s[1:]):
            if layer.residual:
                assert layer.stride == 1 and layer.width == prev.width
        assert not s[0].residual


def test_sampling_is_reproducible_distinct_and_inside_the_space():
    a, b = sample_schemes(SPACE, 60, seed=7), sample_schemes(SPACE, 60, seed=7)
    assert a == b and len(set(a)) == 60
    assert set(a) <= set(enumerate_schemes(SPACE))
    assert sample_schemes(SPACE, 60, seed=8) != a


def test_sampling_more_schemes_than_the_space_holds_is_refused():
    with pytest.raises(Exception, match="search space too small"):
        sample_schemes(SPACE, 441, seed=0)


def test_hash_is_canonical_and_distinguishes_schemes():
    schemes = enumerate_schemes(SPACE)
    assert len({scheme_hash(s) for s in schemes}) == 440
    s = schemes[17]
    assert scheme_hash(scheme_from_dicts(scheme_to_dicts(s))) == scheme_hash(s)


def test_features_match_the_published_columns(release_dir):
    import pandas as pd

    wide = pd.read_csv(release_dir / "naap440.csv")
    feats = pd.DataFrame([scheme_features(s) for s in enumerate_schemes(SPACE)])
    for ours, theirs in [("num_layers", "NumLayers"), ("num_stages", "NumStages"),
                         ("first_layer_width", "FirstLayerWidth"), ("last_layer_width", "LastLayerWidth")]:
        assert (feats[ours] == wide[theirs]).all(), ours


def brute_force(space):
    """Every sequence of layer options of an allowed length that obeys the rules of docs/benchmark.md (Search space),
    in depth-first order (a tuple of option indices sorts before the tuples extending it)."""
    options = [[Layer(*o) for o in itertools.product(p.kernel_size, p.width, p.stride, p.residual)]
               for p in space.positions]
    found = []
    for depth in range(space.min_layers, len(options) + 1):
        for index in itertools.product(*(range(len(o)) for o in options[:depth])):
            layers = [options[i][j] for i, j in enumerate(index)]
            residual_ok = all(not l.residual or (i > 0 and l.stride == 1 and layers[i - 1].width == l.width)
                              for i, l in enumerate(layers))
            if residual_ok and sum(l.stride == 2 for l in layers) <= space.max_stride2_layers:
                found.append((index, tuple(layers)))
    return [scheme for _, scheme in sorted(found)]


def random_space(rng):
    positions = tuple(PositionOptions(
        kernel_size=tuple(rng.sample([1, 3, 5], rng.randint(1, 2))),
        width=tuple(rng.sample([8, 16, 24], rng.randint(1, 3))),
        stride=tuple(rng.sample([1, 2, 3], rng.randint(1, 2))),
        residual=tuple(rng.sample([False, True], rng.randint(1, 2))),
    ) for _ in range(rng.randint(1, 4)))
    return SearchSpace(positions, rng.randint(1, len(positions)), rng.randint(0, len(positions)))


@pytest.mark.parametrize("seed", range(40))
def test_the_count_and_the_walk_agree_with_brute_force(seed):
    space = random_space(random.Random(seed))
    expected = brute_force(space)
    assert count_schemes(space) == len(expected)
    assert enumerate_schemes(space) == expected


def test_the_naap440_space_counts_440_and_a_huge_one_is_counted_without_the_walk():
    assert count_schemes(SPACE) == 440
    wide = PositionOptions(kernel_size=(1, 3, 5), width=(8, 16, 24, 32), stride=(1, 2), residual=(False, True))
    huge = SearchSpace((wide,) * 12, min_layers=12, max_stride2_layers=12)
    # min_layers = every position, no stride-2 limit: the first layer has 3 x 4 x 2 non-residual options;
    # each later one 24 non-residual or 3 residual (stride 1, the previous width).
    assert count_schemes(huge) == 24 * 27 ** 11
    with pytest.raises(NaapError, match=r"search_space: 1\.3e17 schemes; naap lists or trains at most 1,000,000"):
        generate_schemes(huge, Generator())
    # The first three in depth-first order: the last position's options come kernel, width, stride,
    # residual (False first), the earlier ones stay at their first.
    plain = Layer(1, 8, 1, False)
    assert generate_schemes(huge, Generator(), limit=3) == [
        (plain,) * 12, (plain,) * 11 + (Layer(1, 8, 1, True),), (plain,) * 11 + (Layer(1, 8, 2, False),)]


def test_a_space_of_dead_ends_is_walked_without_visiting_them():
    # 10^16 prefixes of the first 16 positions, none extended by the last (residual of width 99 only):
    # the walk must find that there is nothing, at once.
    free = PositionOptions(kernel_size=(1,), width=tuple(range(8, 18)), stride=(1,), residual=(False,))
    dead = PositionOptions(kernel_size=(1,), width=(99,), stride=(1,), residual=(True,))
    space = SearchSpace((free,) * 16 + (dead,), min_layers=17, max_stride2_layers=0)
    assert count_schemes(space) == 0 and list(iter_schemes(space)) == []
    with pytest.raises(NaapError, match="search_space: no scheme satisfies the constraints"):
        generate_schemes(space, Generator())


def test_sampling_more_than_the_space_holds_is_refused_at_once():
    with pytest.raises(NaapError, match=r"search_space.generator.count: 441 schemes asked for, "
                                        r"the search space has only 440"):
        generate_schemes(SPACE, Generator("sample", 441, 0))
    assert generate_schemes(SPACE, Generator("sample", 60, 7), limit=5) == sample_schemes(SPACE, 60, seed=7)[:5]
