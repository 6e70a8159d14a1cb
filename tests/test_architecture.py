"""The seams between domains, read from the source: one owner per table, no reaching into another domain.

- SQL that writes (INSERT INTO, UPDATE … SET, DELETE FROM, in any letter case, in a plain string or in the
  literal parts of an f-string) appears only in store modules (`store.py`, `*_store.py`, a `store/` package) or
  in isa/core (the migration runner and shared engines).
- No module imports another domain's underscored names (`from isa.other... import _name`, relative imports
  included, isa/core's too) or reads one through an imported module (`other_store._NAME`), and no module imports
  another domain's store modules: other domains use the owner's public face (`isa.users.sessions`,
  `isa.users.credits`, `isa.users.usage`, services).
- The same rooms: every package under isa/ has an `__init__.py`, and every package whose modules hold SQL has a
  store module of its own (`store.py`, `*_store.py` or a `store/` package), except the few allowlisted below.

Run as a script (`python tests/test_architecture.py [root]`) it prints the two counts for a tree.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "isa"
WRITE_SQL = re.compile(r"\bINSERT\s+INTO\b|\bUPDATE\s+\S+(\s+AS\s+\w+)?\s+SET\b|\bDELETE\s+FROM\b", re.IGNORECASE)


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


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string constant with its line; an f-string as its literal text with `{}` for each value, so
    f"UPDATE {table} SET ..." is read whole (ast.walk alone would see "UPDATE " and " SET ..." apart)."""
    parts = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            found.append((node.lineno, text))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
            found.append((node.lineno, node.value))
    return found


def sql_writes_outside_stores(root: Path = ROOT) -> list[str]:
    found = []
    for path in _modules(root):
        if _is_store(path, root):
            continue
        for lineno, text in _strings(ast.parse(path.read_text(), str(path))):
            if WRITE_SQL.search(text):
                found.append(f"{path.relative_to(root.parent)}:{lineno}")
    return sorted(found, key=lambda where: (where.rsplit(":", 1)[0], int(where.rsplit(":", 1)[1])))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _absolute(node: ast.ImportFrom, path: Path, root: Path) -> str:
    """The module an ImportFrom names, with a relative import (`from ..users import x`) resolved."""
    if not node.level:
        return node.module or ""
    package = ["isa", *path.relative_to(root).parts[:-1]]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def cross_domain_reaches(root: Path = ROOT) -> list[str]:
    """Imports of another domain's `_private` names (or reads of them through an imported module) and imports of
    another domain's store modules. isa/core is shared, but its private names are private too."""
    found = []
    for path in _modules(root):
        mine = _domain(path, root)
        tree = ast.parse(path.read_text(), str(path))
        foreign: dict[str, str] = {}  # local name -> the other domain's module (or object) it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == "isa" and len(parts) > 1 and parts[1] != mine:
                        foreign[alias.asname or parts[0]] = alias.name if alias.asname else "isa"
            if not isinstance(node, ast.ImportFrom):
                continue
            module = _absolute(node, path, root)
            parts = module.split(".")
            if parts[0] != "isa" or len(parts) < 2 or parts[1] == mine:
                continue
            names = [a.name for a in node.names]
            where = f"{path.relative_to(root.parent)}:{node.lineno}"
            if any(_private(n) for n in names):
                found.append(f"{where} imports private {names} from {module}")
            for alias in node.names:
                foreign[alias.asname or alias.name] = f"{module}.{alias.name}"
            if parts[1] == "core":
                continue
            modules = [*parts[2:], *names]
            if any(m == "store" or m.endswith("_store") for m in modules):
                found.append(f"{where} imports another domain's store ({module}: {names})")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                chain, value = [node.attr], node.value
                while isinstance(value, ast.Attribute):
                    chain.append(value.attr)
                    value = value.value
                owner = foreign.get(value.id) if isinstance(value, ast.Name) else None
                if owner is not None and _other_domain(owner, chain, mine):
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} reads private {node.attr} of {owner}")
    return found


def _other_domain(owner: str, chain: list[str], mine: str | None) -> bool:
    """Whether `owner.<chain reversed>` still lies in another domain (`isa.x` bound by `import isa.x.y`)."""
    parts = [*owner.split("."), *reversed(chain[1:])]
    return len(parts) > 1 and parts[1] != mine


MIGRATIONS = ROOT.parent / "migrations"
SCHEMA_DOC = ROOT.parent / "docs" / "schema.md"
# docs/schema.md, "Known exceptions": auth provisions the `users` row of a principal it sees for the first time.
KNOWN_WRITERS = {("users", "isa/auth/store.py")}
WRITTEN_TABLE = re.compile(
    r"\b(?:INSERT\s+INTO|DELETE\s+FROM)\s+(\w+)|\bUPDATE\s+(?:ONLY\s+)?(\w+)(?:\s+(?:AS\s+)?\w+)?\s+SET\b",
    re.IGNORECASE,
)


def migration_tables(migrations: Path = MIGRATIONS) -> set[str]:
    """The tables the migrations leave behind (created, not dropped, renamed to their last name)."""
    tables: set[str] = set()
    for path in sorted(migrations.glob("*.sql")):
        text = path.read_text()
        for create in re.findall(r"CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", text, re.I):
            tables.add(create.lower())
        for drop in re.findall(r"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(\w+)", text, re.I):
            tables.discard(drop.lower())
        for old, new in re.findall(r"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(\w+)\s+RENAME\s+TO\s+(\w+)", text, re.I):
            tables.discard(old.lower())
            tables.add(new.lower())
    return tables


def documented_owners(doc: Path = SCHEMA_DOC) -> dict[str, set[str]]:
    """docs/schema.md's owner table: table -> the modules named as its writer (none: "nobody yet")."""
    section = doc.read_text().split("## Owners", 1)[1].split("Known exceptions", 1)[0]
    owners: dict[str, set[str]] = {}
    for row in section.splitlines():
        cells = row.split("|")
        if len(cells) < 4 or not cells[1].strip().startswith("`"):
            continue
        modules = set(re.findall(r"`(isa/[\w/]+\.py)`", cells[2]))
        for table in re.findall(r"`(\w+)(?:\.\w+)?`", cells[1]):
            owners.setdefault(table, set()).update(modules)
    return owners


def table_writers(root: Path = ROOT) -> dict[str, set[str]]:
    """Every table named by a write in a string constant, and the modules holding that write."""
    writers: dict[str, set[str]] = {}
    for path in _modules(root):
        for _, text in _strings(ast.parse(path.read_text(), str(path))):
            for match in WRITTEN_TABLE.finditer(text):
                table = (match.group(1) or match.group(2)).lower()
                writers.setdefault(table, set()).add(path.relative_to(root.parent).as_posix())
    return writers


def ownership_problems(root: Path = ROOT, migrations: Path = MIGRATIONS, doc: Path = SCHEMA_DOC) -> list[str]:
    """Tables without a row in the owner table, and writes to a table from a module that is not its owner."""
    owners, writers = documented_owners(doc), table_writers(root)
    problems = [
        f"{t}: no row in docs/schema.md's owner table" for t in sorted(migration_tables(migrations) - set(owners))
    ]
    for table in sorted(set(owners) & set(writers)):
        for module in sorted(writers[table] - owners[table]):
            if (table, module) not in KNOWN_WRITERS:
                problems.append(f"{table}: written by {module}, owner {sorted(owners[table]) or 'nobody yet'}")
    return problems


SQL = re.compile(r"\bSELECT\b[\s\S]*\bFROM\b|" + WRITE_SQL.pattern)
# Packages that hold SQL without a store module, and why.
NO_STORE_NEEDED = {
    "core": "the shared engines (migration runner, pool, search, doctor) that every store builds on",
    "analytics": "engine.py and sqlcheck.py run and vet the caller's own read-only DuckDB SQL, not isa's tables",
}


def _holds_sql(path: Path) -> bool:
    return any(
        isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(SQL.search(node.value))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
    )


def missing_rooms(root: Path = ROOT) -> list[str]:
    """Packages without `__init__.py`, and packages with SQL but no store module of their own."""
    found = []
    for package in sorted({p.parent for p in _modules(root)} - {root}):
        rel = package.relative_to(root)
        modules = list(package.glob("*.py"))
        if not (package / "__init__.py").exists():
            found.append(f"{rel}: no __init__.py")
        has_store = any(m.name == "store.py" or m.name.endswith("_store.py") for m in modules)
        if rel.parts[0] in NO_STORE_NEEDED or "store" in rel.parts or has_store or (package / "store").is_dir():
            continue
        if holding := sorted(m.name for m in modules if _holds_sql(m)):
            found.append(f"{rel}: SQL in {holding} but no store module")
    return found


def test_every_table_has_one_documented_owner_and_only_it_writes_the_table() -> None:
    assert ownership_problems() == []


def test_the_owner_check_sees_an_undocumented_table_and_a_second_writer(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001.sql").write_text(
        "CREATE TABLE alpha_rows (id int);\nCREATE TABLE beta_rows (id int);\nCREATE TABLE gone (id int);\n"
        "DROP TABLE gone;\n"
    )
    (tmp_path / "schema.md").write_text(
        "## Owners\n| table(s) | owner | use |\n|---|---|---|\n| `alpha_rows` | `isa/alpha/store.py` | — |\n"
        "Known exceptions\n"
    )
    for name in ("alpha", "beta"):
        (tmp_path / "isa" / name).mkdir(parents=True)
    (tmp_path / "isa" / "alpha" / "store.py").write_text('Q = "INSERT INTO alpha_rows VALUES (1)"\n')
    (tmp_path / "isa" / "beta" / "store.py").write_text('Q = "UPDATE alpha_rows a SET id = 2"\n')
    assert ownership_problems(tmp_path / "isa", tmp_path / "migrations", tmp_path / "schema.md") == [
        "beta_rows: no row in docs/schema.md's owner table",
        "alpha_rows: written by isa/beta/store.py, owner ['isa/alpha/store.py']",
    ]


def settings_outside_settings_modules(root: Path = ROOT) -> list[str]:
    """`*Settings` classes a domain defines anywhere but a `settings.py` (isa/core, shared by all, is exempt)."""
    found = []
    for path in _modules(root):
        if path.name == "settings.py" or _domain(path, root) in (None, "core"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Settings"):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name}")
    return found


def test_a_domains_settings_models_live_in_its_settings_module(tmp_path: Path) -> None:
    assert settings_outside_settings_modules() == []
    (tmp_path / "alpha").mkdir()
    (tmp_path / "alpha" / "schemas.py").write_text("class AlphaSettings:\n    pass\n")
    (tmp_path / "alpha" / "settings.py").write_text("class MoreSettings:\n    pass\n")
    assert settings_outside_settings_modules(tmp_path) == [f"{tmp_path.name}/alpha/schemas.py:1 AlphaSettings"]


def test_every_package_has_its_rooms_an_init_and_a_store_for_its_sql() -> None:
    assert missing_rooms() == []


def test_the_rooms_check_sees_a_missing_init_and_a_missing_store(tmp_path: Path) -> None:
    (tmp_path / "gamma").mkdir()
    (tmp_path / "gamma" / "service.py").write_text('Q = "SELECT id FROM gamma_rows"\n')
    (tmp_path / "delta").mkdir()
    (tmp_path / "delta" / "__init__.py").write_text("")
    (tmp_path / "delta" / "store.py").write_text('Q = "SELECT id FROM delta_rows"\n')
    assert missing_rooms(tmp_path) == ["gamma: no __init__.py", "gamma: SQL in ['service.py'] but no store module"]


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


def test_the_scan_sees_writes_in_f_strings_and_lower_case_and_private_names_reached_other_ways(
    tmp_path: Path,
) -> None:
    """The Check's wording in full: a write built in an f-string or written in lower case; a private name taken
    by a relative import, from isa/core, or read off an imported module."""
    package = tmp_path / "isa"
    for name in ("alpha", "beta", "core"):
        (package / name).mkdir(parents=True)
    (package / "alpha" / "service.py").write_text(
        'def q(table):\n    return f"UPDATE {table} SET x = 1"\nQ = "delete from alpha_rows where true"\n'
        'NOTE = "Delete the file from storage."\n'
    )
    (package / "beta" / "tools.py").write_text(
        "from ..alpha.service import _helper\n"
        "from isa.core.db import _Pool\n"
        "from isa.alpha import service as alpha_service\n"
        "import isa.alpha.service\n"
        "X = alpha_service._CACHE\n"
        "Y = isa.alpha.service._CACHE\n"
        "Z = alpha_service.__name__\n"
    )
    (package / "beta" / "mine.py").write_text("from isa.beta.tools import _private_but_mine\n")
    assert sql_writes_outside_stores(package) == ["isa/alpha/service.py:2", "isa/alpha/service.py:3"]
    reaches = cross_domain_reaches(package)
    assert [r.split(" ", 1)[1] for r in reaches] == [
        "imports private ['_helper'] from isa.alpha.service",
        "imports private ['_Pool'] from isa.core.db",
        "reads private _CACHE of isa.alpha.service",
        "reads private _CACHE of isa",
    ]


# A caller is optional there: a browser comes back from the upstream's consent page without credentials.
HAND_WRITTEN_SCOPE_CHECKS = {"isa/catalog/federation_oauth_routes.py:callback"}


def hand_written_scope_checks(root: Path = ROOT) -> list[str]:
    """Calls of `require_principal(...)` in a handler, where the scope should be declared on the route instead
    (`@requires(require_principal, scope)` or `@api(Operation(..., scope=...), require_principal)`)."""
    found = []
    for path in _modules(root):
        tree = ast.parse(path.read_text(), str(path))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "require_principal"
                    and f"{path.relative_to(root.parent)}:{func.name}" not in HAND_WRITTEN_SCOPE_CHECKS
                ):
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} in {func.name}")
    return sorted(set(found))


def test_route_handlers_declare_their_scope_instead_of_checking_it_by_hand(tmp_path: Path) -> None:
    assert hand_written_scope_checks() == []
    (tmp_path / "alpha").mkdir()
    (tmp_path / "alpha" / "routes.py").write_text(
        "@requires(require_principal, 'read')\n"
        "async def fine(request, principal):\n    return principal\n\n"
        "async def by_hand(request):\n    return await require_principal(request, 'write')\n"
    )
    assert hand_written_scope_checks(tmp_path) == [f"{tmp_path.name}/alpha/routes.py:6 in by_hand"]


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    writes, reaches = sql_writes_outside_stores(root), cross_domain_reaches(root)
    print("\n".join(writes + reaches))
    print(f"sql writes outside store modules: {len(writes)}")
    print(f"private cross-domain imports: {sum('private' in r for r in reaches)}")
    print(f"cross-domain store imports: {sum('private' not in r for r in reaches)}")
