"""movierec: graph-neural-network movie recommendation experiments on MovieLens."""

__version__ = "0.1.0"
