"""Pinecone's control plane through the pinecone SDK (10.2, API 2026-07): what the docs say an
index's life looks like (create, describe, list, configure, delete) and what is refused."""

from __future__ import annotations

from typing import Any

import pytest
from pinecone.errors.exceptions import ConflictError, ForbiddenError, NotFoundError


def test_create_describe_list_and_exists(pc: Any) -> None:
    model = pc.indexes.create(name="articles", dimension=4, metric="dotproduct", tags={"env": "test"},
                              spec={"serverless": {"cloud": "gcp", "region": "europe-west4"}}, timeout=-1)
    assert model.name == "articles" and model.deletion_protection == "disabled"
    described = pc.indexes.describe("articles")
    assert described.status.ready and described.tags == {"env": "test"}
    assert (described.deployment.cloud, described.deployment.region) == ("gcp", "europe-west4")
    assert [i.name for i in pc.indexes.list()] == ["articles"]
    assert pc.indexes.exists("articles") and not pc.indexes.exists("missing")
    assert pc.has_index("articles") and pc.describe_index("articles").name == "articles"
    assert [i.name for i in pc.list_indexes()] == ["articles"]
    with pytest.raises(ConflictError):
        pc.indexes.create(name="articles", dimension=4, spec={"serverless": {"cloud": "aws", "region": "us-east-1"}},
                          timeout=-1)
    with pytest.raises(NotFoundError):
        pc.indexes.describe("missing")


def test_create_waits_until_ready(pc: Any, pinecone_fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import pinecone.client.indexes as sdk_indexes

    monkeypatch.setattr(sdk_indexes.time, "sleep", lambda s: None)  # the SDK polls every 5 s
    pinecone_fake.initializing_describes = 2  # the index reports "Initializing" twice
    model = pc.create_index(name="slow", dimension=2, metric="cosine",
                            spec={"serverless": {"cloud": "aws", "region": "us-east-1"}})
    assert model.status.ready and model.status.state == "Ready"


def test_configure_deletion_protection_and_tags(pc: Any) -> None:
    pc.indexes.create(name="kept", dimension=2, tags={"team": "a", "env": "dev"},
                      spec={"serverless": {"cloud": "aws", "region": "us-east-1"}}, timeout=-1)
    pc.indexes.configure("kept", deletion_protection="enabled", tags={"env": "prod", "team": ""})
    model = pc.indexes.describe("kept")
    # Tags are merged into the existing ones; a value of "" deletes that key.
    assert model.deletion_protection == "enabled" and model.tags == {"env": "prod"}
    with pytest.raises(ForbiddenError):  # "If deletion protection is enabled; clear it first"
        pc.indexes.delete("kept", timeout=-1)
    pc.configure_index("kept", deletion_protection="disabled")
    pc.indexes.delete("kept")  # blocks until the index is gone
    assert not pc.indexes.exists("kept")
    with pytest.raises(NotFoundError):
        pc.delete_index("kept")
