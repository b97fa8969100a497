"""Leaves every part of the harness may import; they import nothing else of harness: the two kinds of
error (errors.py) and where the harness keeps its files (paths.py)."""
