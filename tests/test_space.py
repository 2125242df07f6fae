import json

import pytest

from naap.recipe import load_recipe
from naap.space import (enumerate_schemes, sample_schemes, scheme_features, scheme_from_dicts, scheme_hash,
                        scheme_to_dicts)
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
