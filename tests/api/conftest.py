"""Two owners on one in-process app with API keys: ``owners.alice`` and ``owners.bob``
speak API.md (the :class:`~tests.conftest.Api` helpers) with their own Bearer key;
``owners.anon`` sends none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from backend.app import create_app
from backend.settings import Settings, temp_settings
from tests.conftest import Api

ALICE_KEY = "alice-key-0123456789abcdef"
BOB_KEY = "bob-key-0123456789abcdef"
KEYS = f"{ALICE_KEY}:alice,{BOB_KEY}:bob"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Owners:
    app: FastAPI
    alice: Api
    bob: Api
    anon: httpx.AsyncClient


@pytest.fixture
def keyed_settings(tmp_path: Path) -> Settings:
    # the global cap on active uploads (5) is not what these tests are about
    return temp_settings(tmp_path / "srv", progress_interval_seconds=0, api_keys=KEYS, max_concurrent_uploads=50)


@pytest.fixture
async def owners(keyed_settings: Settings) -> AsyncIterator[Owners]:
    app = create_app(keyed_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        base = "http://test"
        async with httpx.AsyncClient(transport=transport, base_url=base, headers=auth(ALICE_KEY)) as a, \
                httpx.AsyncClient(transport=transport, base_url=base, headers=auth(BOB_KEY)) as b, \
                httpx.AsyncClient(transport=transport, base_url=base) as anon:
            svc = app.state.services
            yield Owners(app, Api(a, svc), Api(b, svc), anon)
