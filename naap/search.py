"""naap.search is naap.bench.search (simulated search): the path the docs and plug-ins use."""
import sys

import naap.bench.search as _module

sys.modules[__name__] = _module
