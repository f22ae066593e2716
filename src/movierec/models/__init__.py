"""Rating models: encoders over the user–movie graph, decoders, and the LightningModule."""

import warnings

import torch

# Every CSR tensor here (adjacencies, `pair_dot`'s patterns) is built without invariant
# checks, torch's default, as PyG builds its own. Saying so explicitly stops torch warning
# about it in every process, and its "beta state" notice on a process's first CSR tensor
# asks nothing of a user: set once here, so no command prints either.
torch.sparse.check_sparse_tensor_invariants.disable()
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
