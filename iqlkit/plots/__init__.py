"""Figure functions for the notebooks: each returns a matplotlib Figure and is unit-tested."""
