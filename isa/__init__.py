"""isa: one package that serves tools to AI agents (MCP server, model gateway, agent API)."""

import os

# A server runs many small matrix products concurrently (query embeddings); a threaded BLAS on a
# busy 2-core node oversubscribes and a 6 ms query turns into hundreds of ms. Must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
