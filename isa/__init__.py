"""isa: one package that serves tools to AI agents (MCP server, model gateway, agent API)."""

import os

# numpy's small matrix products (ranking checks, adapters) run inside request handlers; a threaded BLAS on a
# busy 2-core node oversubscribes and milliseconds turn into hundreds. Must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
