from tests.support.memory import mkeys, node

__all__ = ["mkeys", "node"]
