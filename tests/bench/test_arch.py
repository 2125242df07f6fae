"""Arch: the notation round-trips on every published scheme, bad input is named, and the
explanation of "outside the space" agrees with the enumeration of the space."""
import json
import random
import subprocess
import sys

import pytest

from naap.bench.arch import FIELDS, Arch, InvalidArchitecture, outside_space, search_space
from naap.bench.space import Layer, enumerate_schemes, scheme_hash
from naap.bench.tables import load_tables
from naap.errors import NaapError
from naap.rebuild.recipe import load_recipe
from tests.conftest import REPO

RECIPE = load_recipe(REPO / "recipes" / "naap440.yaml")


@pytest.fixture(scope="module")
def published(release_dir) -> list[list[dict]]:
    return json.loads((release_dir / "generated_schemes.json").read_text())


def test_every_published_scheme_round_trips_through_the_notation(published):
    hashes = load_tables(REPO / "data" / "naap440").architectures["arch_hash"].tolist()
    for layers, arch_hash in zip(published, hashes, strict=True):
        arch = Arch.from_layers(layers)
        assert Arch.parse(str(arch)) == arch
        assert [{"kernel_size": l.kernel_size, "width": l.width, "stride": l.stride, "residual": l.residual}
                for l in arch.layers] == layers
        assert arch.hash == arch_hash


def test_the_notation_is_the_one_naap_schemes_prints(published):
    out = subprocess.run([sys.executable, "-m", "naap", "schemes", "recipes/naap440.yaml"], cwd=REPO,
                         capture_output=True, text=True, check=True)
    for line, layers in zip(out.stdout.splitlines(), published, strict=True):
        printed = line.split("MACs")[1].strip()
        assert Arch.parse(printed) == Arch.from_layers(layers) and str(Arch.from_layers(layers)) == printed


@pytest.mark.parametrize("text", ["k3w12s2 k3w16s2 k1w16s1r", "  k3w12s2   k3w16s2\tk1w16s1r ",
                                  "k3w12s2-k3w16s2-k1w16s1r", "k3w12s2, k3w16s2, k1w16s1r"])
def test_separators_spaces_hyphens_and_commas(text):
    arch = Arch.parse(text)
    assert str(arch) == "k3w12s2 k3w16s2 k1w16s1r"
    assert arch.layers == (Layer(3, 12, 2, False), Layer(3, 16, 2, False), Layer(1, 16, 1, True))


def test_layers_as_tuples_dicts_and_layer_objects_are_the_same_arch():
    as_tuples = Arch.from_layers([(3, 12, 2, False), (3, 16, 2, False), (1, 16, 1, True)])
    as_dicts = Arch.from_layers([dict(zip(FIELDS, t)) for t in [(3, 12, 2, False), (3, 16, 2, False), (1, 16, 1, True)]])
    as_layers = Arch.from_layers(as_tuples.layers)
    assert as_tuples == as_dicts == as_layers and len({as_tuples, as_dicts, as_layers}) == 1
    assert repr(as_tuples) == "Arch('k3w12s2 k3w16s2 k1w16s1r')"
    with pytest.raises(AttributeError):
        as_tuples.layers = ()


@pytest.mark.parametrize("text,where", [
    ("", "empty architecture string"),
    ("k3w12 k3w16s2", "layer 1 'k3w12'"),
    ("k3w12s2 K3W16S2", "layer 2 'K3W16S2'"),
    ("k3w12s2 k3w16s2 k1w16s1x", "layer 3 'k1w16s1x'"),
    ("3-12-2 3-16-2", "layer 1 '3'"),
])
def test_unparsable_text_says_what_the_notation_is(text, where):
    with pytest.raises(InvalidArchitecture) as caught:
        Arch.parse(text)
    message = str(caught.value)
    assert where in message and "k<kernel>w<width>s<stride>" in message and "e.g. 'k3w12s2 k3w16s2 k1w16s1r'" in message
    assert isinstance(caught.value, NaapError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize("layers,message", [
    ([(3, 12, 2, False), {"kernel_size": 3, "width": 16, "stride": 2}], "layer 2: missing field 'residual'"),
    ([(3, 0, 2, False)], "layer 1: width must be a positive integer, got 0"),
    ([(3, 12.5, 2, False)], "layer 1: width must be a positive integer, got 12.5"),
    ([(3, 12, 2, "yes")], "layer 1: residual must be True or False, got 'yes'"),
    ([(3, 12, 2)], "layer 1: (3, 12, 2) has 3 of a layer's 4 fields (kernel_size, width, stride, residual): it lacks residual"),
    ([(3, 12, 2, False), (3,)], "layer 2: (3,) has 1 of a layer's 4 fields (kernel_size, width, stride, residual): it lacks width, stride, residual"),
    ([(3, 12, 2, False, 1)], "layer 1: (3, 12, 2, False, 1) is not a layer"),
    ("k3w12s2", "is not a list of layers (for text use Arch.parse)"),
    ([], "layers must be a non-empty tuple"),
])
def test_bad_layers_are_named(layers, message):
    with pytest.raises(InvalidArchitecture) as caught:
        Arch.from_layers(layers)
    assert message in str(caught.value)


def _mutations(arch: Arch, values: dict):
    """Every architecture one field away from `arch`, within the values of any position, and
    the architecture with one layer dropped or one added."""
    layers = list(arch.layers)
    for i, layer in enumerate(layers):
        for name in FIELDS:
            for value in values[name]:
                if value != getattr(layer, name):
                    changed = dict(zip(FIELDS, (getattr(layer, f) for f in FIELDS)), **{name: value})
                    yield Arch.from_layers(layers[:i] + [changed] + layers[i + 1:])
    yield Arch(tuple(layers[:-1]))
    yield Arch(tuple(layers + [Layer(3, 40, 1, False)]))


def test_outside_space_agrees_with_the_enumeration_of_the_space():
    """Oracle: the depth-first walk of naap.bench.space. Checked on every scheme of the space, every
    scheme one field, one layer away from one, and random schemes over all option values."""
    space = search_space(RECIPE.raw)
    inside = {scheme_hash(s) for s in enumerate_schemes(RECIPE.search_space)}
    values = {name: sorted({v for p in RECIPE.search_space.positions for v in getattr(p, name)}) for name in FIELDS}
    rng = random.Random(0)
    candidates = [Arch(s) for s in enumerate_schemes(RECIPE.search_space)]
    candidates += [m for a in candidates for m in _mutations(a, values)]
    candidates += [Arch.from_layers([tuple(rng.choice(values[n]) for n in FIELDS) for _ in range(rng.randint(1, 5))])
                   for _ in range(20_000)]
    assert len(inside) == 440
    disagreements = [a for a in candidates if (outside_space(a, space) is None) != (a.hash in inside)]
    assert not disagreements, disagreements[:3]


@pytest.mark.parametrize("text,reason", [
    ("k3w12s2 k3w16s2", "it has 2 layers; the space has 3 to 4"),
    ("k3w12s2 k3w16s2 k3w16s1 k3w32s1 k3w40s1", "it has 5 layers; the space has 3 to 4"),
    ("k3w12s2 k3w16s2 k1w20s1", "layer 3: width 20 is not an option at this position (16, 24, 32)"),
    ("k3w12s2r k3w16s2 k1w16s1", "layer 1: residual yes is not an option at this position (no)"),
    ("k3w12s2 k3w16s2 k1w16s2r", "layer 3: a residual layer needs stride 1, it has stride 2"),
    ("k3w12s2 k3w16s2 k1w24s1r", "layer 3: a residual layer needs the previous layer's width (16), it has width 24"),
    ("k3w12s2 k3w16s2 k3w16s2 k1w32s2", "4 layers have stride 2; at most 3 may"),
])
def test_the_reason_names_the_position_and_the_rule(text, reason):
    assert outside_space(Arch.parse(text), search_space(RECIPE.raw)) == reason
