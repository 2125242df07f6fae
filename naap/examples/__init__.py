"""Examples that run from an installed naap: `python -m naap.examples.search` (docs/search.md)."""
