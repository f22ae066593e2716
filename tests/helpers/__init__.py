"""Shared test helpers: composing the real configs for tests (`configs`), tiny graphs and
datasets (`graphs`, `movielens_layouts`), local servers (`servers`), sweep commands
(`sweeps`) and a callback that fails on purpose (`failing_callbacks`). Test modules import
from here, never from each other."""
