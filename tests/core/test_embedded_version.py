"""The embedded server keeps its data in a folder named after its major version and refuses an older one."""

from __future__ import annotations

from pathlib import Path

import pytest

from isa.core.embedded import PG_MAJOR, EmbeddedVersionError, data_folder, embedded_url


def test_a_postgres_16_folder_from_an_earlier_isa_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "pg").mkdir()
    (tmp_path / "pg" / "PG_VERSION").write_text("16\n")
    with pytest.raises(EmbeddedVersionError) as caught:
        embedded_url(tmp_path)
    message = str(caught.value)
    assert "PostgreSQL 16" in message and f"mv {tmp_path / 'pg'} " in message
    assert not (tmp_path / f"pg{PG_MAJOR}").exists()  # nothing half-created next to the old data


def test_a_folder_of_the_current_version_is_used_even_when_the_old_one_is_still_there(tmp_path: Path) -> None:
    (tmp_path / "pg").mkdir()
    (tmp_path / "pg" / "PG_VERSION").write_text("16\n")
    (tmp_path / f"pg{PG_MAJOR}").mkdir()
    assert data_folder(tmp_path) == tmp_path / f"pg{PG_MAJOR}"
