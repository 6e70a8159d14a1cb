"""On S3 (moto's server, real HTTP and SigV4): the Parquet lands in the user's prefix, and a second node with an
empty cache answers from it — any mcp node can query any table."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from isa.app import create_app
from isa.core.settings import ServicesSettings, Settings
from tests.analytics.conftest import MODEL, Keys
from tests.analytics.helpers import ok, sales_csv, upload
from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.files import make_bucket, moto_endpoint, s3_client, s3_storage_settings
from tests.support.mcp_servers import serve_asgi

__all__ = ["moto_endpoint"]
pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def bucket(moto_endpoint: str) -> str:
    return make_bucket(moto_endpoint)


def s3_node(settings: Settings, db_url: str, fake: FakeOpenAI, endpoint: str, bucket: str, data_dir: Path) -> Settings:
    raw = copy.deepcopy(settings.raw)
    raw.setdefault("auth", {})["token_secret"] = "analytics-test-secret-0123456789abcdef0123"
    raw["storage"] = s3_storage_settings(endpoint, bucket)
    raw["files"] = {**raw.get("files", {}), "sweep_interval_seconds": 0}
    raw["analytics"] = {**raw.get("analytics", {}), "sql_model": MODEL}
    return settings.model_copy(
        update={"raw": raw, "services": ServicesSettings(model_url=fake.url), "data_dir": data_dir}
    )


@pytest.fixture(scope="module")
def two_nodes(
    settings: Settings,
    db_url: str,
    fake: FakeOpenAI,
    moto_endpoint: str,
    bucket: str,
    keys: Keys,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str]]:
    """Two mcp nodes on one bucket and one database, each with its own data dir (so its own Parquet cache)."""
    first = s3_node(settings, db_url, fake, moto_endpoint, bucket, tmp_path_factory.mktemp("node1"))
    second = s3_node(settings, db_url, fake, moto_endpoint, bucket, tmp_path_factory.mktemp("node2"))
    with (
        serve_asgi(create_app(first, "mcp", database_url=db_url)) as one,
        serve_asgi(create_app(second, "mcp", database_url=db_url)) as two,
    ):
        yield one, two


async def test_a_table_ingested_on_one_node_is_queried_from_s3_on_another(
    two_nodes: tuple[str, str], keys: Keys, fake: FakeOpenAI, moto_endpoint: str, bucket: str
) -> None:
    one, two = two_nodes
    file_id = upload(one, "ana-alice", keys.alice, "orders.csv", sales_csv(120), "text/csv")
    out = await ok(one, keys.alice, "ingest_data_source", {"source_path": file_id, "database_name": "s3db"})
    assert out["tables"][0]["rows"] == 120
    keys_in_bucket = [o["Key"] for o in s3_client(moto_endpoint).list_objects_v2(Bucket=bucket)["Contents"]]
    parquet = [k for k in keys_in_bucket if k.endswith(".parquet")]
    assert len(parquet) == 1 and parquet[0].startswith("users/ana-alice/analytics/s3db/orders-")
    fake.script(MODEL, Reply(text="```sql\nSELECT count(*) AS n, sum(quantity) AS q FROM orders\n```"))
    data = await ok(two, keys.alice, "query_with_language", {"natural_language_query": "how many orders"})
    assert data["rows"][0][0] == 120
