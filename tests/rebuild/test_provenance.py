"""naap.rebuild.provenance: the versions every provenance records, read without importing anything heavy."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa

import naap
from naap.rebuild.provenance import versions


def test_versions_are_those_the_packages_report():
    found = versions("torch")
    assert found["naap"] == naap.__version__
    assert (found["numpy"], found["pandas"], found["pyarrow"]) == (np.__version__, pd.__version__, pa.__version__)
    assert found["python"] == ".".join(map(str, sys.version_info[:3]))
    assert versions("no-such-package-naap")["no-such-package-naap"] == "not installed"


def test_versions_import_neither_torch_nor_the_tables():
    code = ("import sys; from naap.rebuild.provenance import versions; v = versions('torch', 'torchvision'); "
            "print(sorted(m for m in ('torch', 'torchvision', 'pandas', 'pyarrow') if m in sys.modules), "
            "v['torch'] != 'not installed')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] True"
