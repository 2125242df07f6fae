"""naap.predictors is naap.board.predictors (the predictor registry and the plug-in `Predictor`): the path the docs and plug-ins use."""
import sys

import naap.board.predictors as _module

sys.modules[__name__] = _module
