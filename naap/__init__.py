"""naap: rebuild the NAAP-440 benchmark and rank accuracy predictors on it."""
__version__ = "0.1.0"
