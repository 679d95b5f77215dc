"""Shared fixtures: the offline tiny models, built once per test session in a temp cache."""

from __future__ import annotations

import os
import tempfile
import warnings

# Before gradio/hub imports: no analytics, no network, tiny models in a private cache.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GOLDENNOISE_CACHE", tempfile.mkdtemp(prefix="goldennoise-cache-"))
warnings.filterwarnings("ignore", message=".*torchvision.*")

import pytest  # noqa: E402

from goldennoise.generation import models, scoring  # noqa: E402
from goldennoise.generation.pipeline import GenerationParams  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model() -> models.LoadedModel:
    return models.load_model("tiny-flux")


@pytest.fixture(scope="session")
def tiny_clip() -> scoring.ClipScorer:
    return scoring.load_clip("tiny-clip")


@pytest.fixture
def params() -> GenerationParams:
    return GenerationParams(num_inference_steps=4, guidance_scale=0.0, height=128, width=128, max_sequence_length=64)


@pytest.fixture(autouse=True)
def _close_browser_pages():
    """Pages a browser test opened are closed when it ends (their timers would poll the app through later tests)."""
    yield
    import sys

    opened = sys.modules.get("tests.browser")
    if opened is not None:
        opened.close_opened()


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test (Playwright's sync API allows one per thread)."""
    from tests.browser import chromium

    with chromium() as shared:
        yield shared


@pytest.fixture(scope="session")
def postgresql_url():
    """One PostgreSQL server for the session (tests/pg.py); each test resets its tables with tests.pg.reset."""
    from tests.pg import postgresql

    with postgresql() as url:
        yield url
