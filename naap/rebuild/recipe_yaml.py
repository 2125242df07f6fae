"""The recipe's YAML, read safely: plain data only, no aliases, merge keys or duplicate keys, and a
bounded size. Anything else is one NaapError naming the file and the line."""
from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from naap._io import open_regular
from naap.errors import NaapError, first_line

MAX_RECIPE_BYTES = 1 << 20  # a recipe is a few kB


class _Refused(Exception):
    """YAML a recipe never needs, refused at the line it stands on."""

    def __init__(self, node_or_event, message: str):
        super().__init__(f"line {node_or_event.start_mark.line + 1}: {message}")


class _RecipeLoader(yaml.SafeLoader):
    """yaml.SafeLoader without aliases (a few lines of them expand to gigabytes, and the
    recipe is copied into every provenance), merge keys (they exist for aliases) and
    duplicate keys (the last one would silently win)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(event, f"YAML alias *{event.anchor} (aliases are not allowed in a recipe)")
        return super().compose_node(parent, index)

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date 2020-02-31, a 5000-digit integer
            raise _Refused(node, f"not valid YAML ({first_line(exc)})") from None

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(key_node, "YAML merge key '<<' (not allowed in a recipe)")
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                if key in seen:
                    raise _Refused(key_node, f"duplicate key {key!r}")
                seen.add(key)
        return super().construct_mapping(node, deep)


def read_recipe_yaml(path: Path) -> Any:
    """The recipe's YAML, or one NaapError naming the file for anything unreadable in it."""
    if path.is_dir():  # the likeliest mistake (a dataset folder), named as such
        raise NaapError(f"{path}: is a directory, not a recipe file")
    with open_regular(path, MAX_RECIPE_BYTES, what="recipe file") as f:
        data = f.read(MAX_RECIPE_BYTES + 1)
    if len(data) > MAX_RECIPE_BYTES:  # grown since it was opened
        raise NaapError(f"{path}: more than {MAX_RECIPE_BYTES >> 20} MiB; not a recipe")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NaapError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise NaapError(f"{path}: empty; a recipe is a mapping of name, search_space, dataset, training, split")
    try:
        return yaml.load(text, Loader=_RecipeLoader)
    except _Refused as exc:
        raise NaapError(f"{path}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise NaapError(f"{path}: {where}not valid YAML ({exc.problem or exc.context})") from None
    except yaml.YAMLError as exc:
        raise NaapError(f"{path}: not valid YAML ({first_line(exc)})") from None
    except RecursionError:
        raise NaapError(f"{path}: not a recipe (nested too deeply)") from None
