"""naap: rebuild the NAAP-440 benchmark and rank accuracy predictors on it.

    import naap
    tables = naap.load_tables("data/naap440")   # .architectures, .epochs (pandas)
    wide = naap.load_wide("data/naap440")       # the published CSV's layout
"""
__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so `import naap` stays light: the tables pull in pandas and pyarrow.
    if name in ("load_tables", "load_wide"):
        from naap import tables
        return getattr(tables, name)
    raise AttributeError(f"module 'naap' has no attribute {name!r}")
