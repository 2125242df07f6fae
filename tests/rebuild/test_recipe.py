import copy

import pytest
import yaml

from naap.errors import NaapError
from naap.rebuild.jobs import make_plan
from naap.rebuild.recipe import load_recipe
from tests.conftest import REPO

BASE = yaml.safe_load((REPO / "recipes" / "naap440.yaml").read_text())


def write(tmp_path, raw):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_naap440_recipe_states_the_spec():
    r = load_recipe(REPO / "recipes" / "naap440.yaml")
    t = r.training
    assert (t.epochs, t.batch_size, t.lr, t.momentum, t.weight_decay, t.nesterov) == (90, 256, 0.1, 0.9, 1e-4, False)
    assert (t.mean, t.std, t.seeds) == (0.5, 0.5, (20220819,))
    assert r.split.test_items == 40 and r.dataset.name == "cifar10"
    assert [p.width for p in r.search_space.positions] == [(12, 16), (16, 24), (16, 24, 32), (32, 40)]


def test_learning_rate_schedule_for_all_90_epochs():
    t = load_recipe(REPO / "recipes" / "naap440.yaml").training
    expected = [0.1, 0.01, 0.001] * 30
    assert [t.lr_at(i) for i in range(1, 91)] == pytest.approx(expected, rel=1e-12)


def edit(path, value):
    raw = copy.deepcopy(BASE)
    *parents, last = path
    node = raw
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return raw


DELETE = object()


@pytest.mark.parametrize("path,value,message", [
    (("training", "epochz"), 3, "training.epochz: unknown key"),
    (("colour",), "red", "colour: unknown key"),
    (("training", "epochs"), "ninety", "training.epochs: must be int"),
    (("training", "epochs"), 0, "training.epochs: must be from 1 to 32,767"),
    (("training", "batch_size"), 2.5, "training.batch_size: must be int"),
    (("training", "optimizer", "momentum"), 1.5, "training.optimizer.momentum: must be in [0, 1)"),
    (("training", "optimizer", "lr"), -0.1, "training.optimizer.lr: must be > 0"),
    (("training", "seeds"), [], "training.seeds: must be a non-empty list"),
    (("training", "lr_schedule", "kind"), "cosine", "training.lr_schedule.kind: must be one of cyclic-step"),
    (("search_space", "positions", 0, "kernel_size"), [2], "search_space.positions[0].kernel_size[0]: must be an odd"),
    (("search_space", "positions", 1, "width"), [16, 16], "search_space.positions[1].width: has repeated options"),
    (("search_space", "positions", 2, "residual"), ["no"], "search_space.positions[2].residual[0]: must be bool"),
    (("search_space", "min_layers"), 5, "search_space.min_layers: must be between 1 and 4"),
    (("search_space", "generator"), {"mode": "sample"}, "search_space.generator.count: required"),
    (("search_space", "generator"), {"mode": "random"}, "search_space.generator.mode: must be one of"),
    (("dataset", "name"), "imagenet", "dataset.name: must be one of"),
    (("dataset", "name"), DELETE, "dataset.name: missing required key"),
    (("split", "test_items"), -1, "split.test_items: must be from 0 to"),
    (("runner", "strategy"), "fsdp", "runner.strategy: must be one of shard, ddp"),
    (("runner", "engine"), "turbo", "runner.engine: must be one of eager, cohort, cohort-graphs"),
    (("runner", "cohort_size"), 0, "runner.cohort_size: must be from 1 to 4,096"),
    (("runner", "cohort_size"), "big", "runner.cohort_size: must be auto or an int, got 'big'"),
    (("runner", "cohort_size"), 2.0, "runner.cohort_size: must be auto or an int, got 2.0"),
    (("runner", "cohort_size"), True, "runner.cohort_size: must be auto or an int, got True"),
    (("runner", "cohort_size"), 4097, "runner.cohort_size: must be from 1 to 4,096"),
    (("runner",), {"strategy": "ddp", "engine": "cohort"}, "runner.engine: cohort needs the shard strategy"),
    (("training", "extra_seeds"), {"seeds": [20220819], "architectures": 4, "sample_seed": 0},
     "training.extra_seeds.seeds: seed 20220819 is in training.seeds already"),
    (("training", "extra_seeds"), {"seeds": [1], "architectures": 0, "sample_seed": 0},
     "training.extra_seeds.architectures: must be from 1 to"),
    (("training", "extra_seeds"), {"seeds": [1], "architectures": 4}, "training.extra_seeds.sample_seed: missing"),
    (("training", "extra_seeds"), {"seeds": [2 ** 63], "architectures": 4, "sample_seed": 0},
     "training.extra_seeds.seeds[0]: must be from 0 to"),
])
def test_bad_recipe_is_refused_naming_file_and_key(tmp_path, path, value, message):
    bad = write(tmp_path, edit(path, value))
    with pytest.raises(NaapError) as err:
        load_recipe(bad)
    assert str(err.value).startswith(f"{bad}: ") and message in str(err.value)


def test_missing_and_malformed_files_are_named(tmp_path):
    with pytest.raises(NaapError, match="nope.yaml: recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(NaapError, match="broken.yaml: line 2: not valid YAML"):
        load_recipe(broken)


@pytest.mark.parametrize("path,value", [
    (("search_space", "positions", 3, "kernel_size"), [1, 31]),
    (("search_space", "positions", 3, "stride"), [1, 32]),
    (("search_space", "positions", 3, "width"), [1, 32767]),
    (("training", "seeds"), [0, 2 ** 63 - 1]),
    (("training", "epochs"), 32767),
    (("dataset", "train_size"), 50000),
    (("dataset", "test_size"), 10000),
    (("training", "batch_size"), 50000),
    (("training", "optimizer", "lr"), 1),
    (("description",), "two\nlines\tand a tab"),
    (("runner", "cohort_size"), 4096),
], ids=["kernel-31", "stride-32", "width-32767", "seed-2**63-1", "epochs-32767", "train-size-50000",
        "test-size-10000", "batch-the-whole-set", "lr-an-integer", "description-multiline", "cohort-4096"])
def test_the_largest_values_that_fit_are_accepted(tmp_path, path, value):
    """The bounds refuse only what does not fit: each limit itself loads."""
    recipe = load_recipe(write(tmp_path, edit(path, value)))
    assert recipe.raw == edit(path, value)


def test_every_shipped_recipe_loads():
    for path in sorted((REPO / "recipes").glob("*.yaml")):
        assert load_recipe(path).name == path.stem


def test_extra_seeds_are_read_as_given(tmp_path):
    raw = edit(("training", "extra_seeds"), {"seeds": [7, 8], "architectures": 40, "sample_seed": 3})
    extra = load_recipe(write(tmp_path, raw)).training.extra_seeds
    assert (extra.seeds, extra.architectures, extra.sample_seed) == ((7, 8), 40, 3)
    assert load_recipe(REPO / "recipes" / "naap440.yaml").training.extra_seeds is None


def test_the_seeds_recipe_is_naap440_plus_40_architectures_with_two_more_seeds():
    """recipes/naap440-seeds.yaml repeats every NAAP-440 training as recipes/naap440.yaml has it:
    the two differ only in name, description and training.extra_seeds."""
    base, seeds = (load_recipe(REPO / "recipes" / name) for name in ("naap440.yaml", "naap440-seeds.yaml"))
    extra = seeds.raw["training"].pop("extra_seeds")
    assert {k: v for k, v in seeds.raw.items() if k not in ("name", "description")} == \
        {k: v for k, v in base.raw.items() if k not in ("name", "description")}
    plan, base_plan = make_plan(seeds), make_plan(base)
    main = [(job.arch_id, job.scheme) for job in plan.jobs if job.seed == 20220819]
    assert main == [(job.arch_id, job.scheme) for job in base_plan.jobs] and len(main) == 440
    retrained = {job.arch_id for job in plan.jobs if job.seed in extra["seeds"]}
    assert len(retrained) == extra["architectures"] == 40 and len(plan.jobs) == 440 + 2 * 40


def test_the_runner_defaults_to_eager_trainings(tmp_path):
    runner = load_recipe(write(tmp_path, edit(("runner",), {}))).runner
    assert (runner.strategy, runner.engine, runner.cohort_size) == ("shard", "eager", "auto")
    chosen = load_recipe(write(tmp_path, edit(("runner",), {"engine": "cohort-graphs", "cohort_size": 440}))).runner
    assert (chosen.engine, chosen.cohort_size) == ("cohort-graphs", 440)
    measured = load_recipe(write(tmp_path, edit(("runner",), {"engine": "cohort", "cohort_size": "auto"}))).runner
    assert measured.cohort_size == "auto"
