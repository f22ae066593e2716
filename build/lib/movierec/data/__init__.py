"""MovieLens data: sources, parsing and validation, processed cache, graph, splits, DataModule."""
