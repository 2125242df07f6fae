"""Recipes by name: `naap recipes` lists the shipped ones, every command that takes a recipe takes
their names from any folder, `naap info` defaults to the shipped data, and a file given for a
folder (or the reverse) is named as such."""
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO

RECIPES = sorted(REPO.glob("recipes/*.yaml"), key=lambda path: path.stem)


def naap(*args, cwd):
    return subprocess.run([sys.executable, "-m", "naap", *map(str, args)], cwd=cwd, capture_output=True, text=True)


def test_recipes_lists_every_shipped_recipe_with_its_description(tmp_path):
    out = naap("recipes", "--paths", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    table, paths = out.stdout.split("\n\n")
    lines = table.splitlines()[1:]
    assert [line.split()[0] for line in lines] == [path.stem for path in RECIPES]
    for line, path in zip(lines, RECIPES):  # oracle: the YAML read by PyYAML itself
        raw = yaml.safe_load(path.read_text())
        assert line.split()[:3] == [raw["name"], raw["dataset"]["name"], str(raw["training"]["epochs"])]
        assert line.endswith(raw["description"])
    assert paths.splitlines() == [f"{path.stem}: {path}" for path in RECIPES]


@pytest.mark.parametrize("name", ["naap440", "smoke"])
def test_schemes_takes_a_shipped_name_from_any_folder(tmp_path, name):
    by_name = naap("schemes", name, "--json", cwd=tmp_path)
    by_path = naap("schemes", REPO / "recipes" / f"{name}.yaml", "--json", cwd=tmp_path)
    assert by_name.returncode == 0 and by_path.returncode == 0, by_name.stderr
    assert by_name.stdout == by_path.stdout and by_name.stdout.count('"arch_id"') > 1


def test_a_file_in_the_working_folder_wins_over_a_shipped_name(tmp_path):
    (tmp_path / "smoke").write_text("name: [not a recipe\n")
    out = naap("schemes", "smoke", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.startswith("naap: error: smoke:")


def test_other_commands_take_the_name_too(tmp_path):
    from naap.rebuild.recipe import load_recipe
    assert load_recipe("fmnist-mini") == load_recipe(REPO / "recipes" / "fmnist-mini.yaml")
    out = naap("dataset", "no-such-recipe", "--estimate", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == ("naap: error: no-such-recipe: no such recipe file, and not the name of a shipped "
                                  f"recipe ({', '.join(p.stem for p in RECIPES)}; `naap recipes` lists them)")


def test_info_defaults_to_the_shipped_data(tmp_path):
    default, given = naap("info", cwd=tmp_path), naap("info", REPO / "data" / "naap440", cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    assert default.stdout == given.stdout and "440 architectures (40 test)" in default.stdout


@pytest.mark.parametrize("args, message", [
    (("info", REPO / "recipes" / "naap440.yaml"),
     f"{REPO / 'recipes' / 'naap440.yaml'}: is a file, not a dataset directory (a folder with architectures.parquet "
     f"and epochs.parquet); a recipe is read by `naap schemes` and `naap dataset`"),
    (("schemes", REPO / "data" / "naap440"), f"{REPO / 'data' / 'naap440'}: is a directory, not a recipe file"),
    (("plot", REPO / "recipes" / "smoke.yaml", "--arch", "1", "--out", "x.png"),
     f"{REPO / 'recipes' / 'smoke.yaml'}: is a file, not a dataset directory"),
])
def test_a_file_for_a_folder_or_the_reverse_is_named_as_such(tmp_path, args, message):
    out = naap(*args, cwd=tmp_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith(f"naap: error: {message}")
