"""naap.plot is naap.bench.plot (learning-curve plots): the path the docs and plug-ins use."""
import sys

import naap.bench.plot as _module

sys.modules[__name__] = _module
