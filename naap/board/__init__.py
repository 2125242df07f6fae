"""The leaderboard: feature sets with a budget, the predictor registry, the protocols and their
metrics, the noise ceiling, and the report (tables, figures, README.md and index.html)."""
from naap._lazy import lazy_exports

_EXPORTS = {
    "Predictor": "naap.board.predictors:Predictor", "REGISTRY": "naap.board.predictors:REGISTRY",
    "select_predictors": "naap.board.predictors:select_predictors",
    "build_features": "naap.board.features:build_features", "wide_frame": "naap.board.features:wide_frame",
    "run_protocols": "naap.board.protocols:run_protocols", "summarise": "naap.board.summary:summarise",
    "score": "naap.board.metrics:score", "noise_ceiling": "naap.board.ceiling:noise_ceiling",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
