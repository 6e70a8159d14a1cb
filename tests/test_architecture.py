"""The seams between domains, read from the source: one owner per table, no reaching into another domain.

- SQL that writes (INSERT INTO, UPDATE … SET, DELETE FROM) appears only in store modules (`store.py`,
  `*_store.py`, a `store/` package) or in isa/core (the migration runner and shared engines).
- No module imports another domain's underscored names or another domain's store modules: other domains use
  the owner's public face (`isa.users.sessions`, `isa.users.credits`, `isa.users.usage`, services).

Run as a script (`python tests/test_architecture.py [root]`) it prints the two counts for a tree.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "isa"
WRITE_SQL = re.compile(r"\bINSERT\s+INTO\b|\bUPDATE\s+\S+(\s+AS\s+\w+)?\s+SET\b|\bDELETE\s+FROM\b")


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "migrations" not in p.parts)


def _is_store(path: Path, root: Path) -> bool:
    rel = path.relative_to(root)
    return (
        rel.parts[0] == "core"
        or path.name == "store.py"
        or path.name.endswith("_store.py")
        or "store" in rel.parts[:-1]
    )


def _domain(path: Path, root: Path) -> str | None:
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else None


def sql_writes_outside_stores(root: Path = ROOT) -> list[str]:
    found = []
    for path in _modules(root):
        if _is_store(path, root):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and WRITE_SQL.search(node.value):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def cross_domain_reaches(root: Path = ROOT) -> list[str]:
    """Imports of another domain's `_private` names or of another domain's store modules."""
    found = []
    for path in _modules(root):
        mine = _domain(path, root)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or not node.module or not node.module.startswith("isa."):
                continue
            parts = node.module.split(".")
            if len(parts) < 2 or parts[1] == mine or parts[1] == "core":
                continue
            names = [a.name for a in node.names]
            where = f"{path.relative_to(root.parent)}:{node.lineno}"
            if any(n.startswith("_") for n in names):
                found.append(f"{where} imports private {names} from {node.module}")
            modules = [*parts[2:], *names]
            if any(m == "store" or m.endswith("_store") for m in modules):
                found.append(f"{where} imports another domain's store ({node.module}: {names})")
    return found


def test_sql_that_writes_lives_only_in_store_modules() -> None:
    assert sql_writes_outside_stores() == []


def test_no_domain_imports_another_domains_private_names_or_its_store() -> None:
    assert cross_domain_reaches() == []


def test_the_scan_sees_a_write_and_a_private_import(tmp_path: Path) -> None:
    """The checks can fail: a planted write in a service and a planted private import are both reported."""
    (tmp_path / "alpha").mkdir()
    (tmp_path / "alpha" / "service.py").write_text('Q = "UPDATE alpha_rows SET x = 1"\n')
    (tmp_path / "alpha" / "store.py").write_text('Q = "DELETE FROM alpha_rows"\n')
    (tmp_path / "beta").mkdir()
    (tmp_path / "beta" / "tools.py").write_text("from isa.alpha.store import _COLUMNS\n")
    assert sql_writes_outside_stores(tmp_path) == [f"{tmp_path.name}/alpha/service.py:1"]
    reaches = cross_domain_reaches(tmp_path)
    assert len(reaches) == 2 and "private" in reaches[0] and "store" in reaches[1]


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    writes, reaches = sql_writes_outside_stores(root), cross_domain_reaches(root)
    print("\n".join(writes + reaches))
    print(f"sql writes outside store modules: {len(writes)}")
    print(f"private cross-domain imports: {sum('private' in r for r in reaches)}")
    print(f"cross-domain store imports: {sum('private' not in r for r in reaches)}")
