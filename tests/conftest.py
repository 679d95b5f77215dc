"""Shared fixtures: the offline tiny model, built once per test session in a temp cache."""

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

from goldennoise import models, scoring, session  # noqa: E402
from goldennoise.engine import Engine  # noqa: E402
from goldennoise.generation import GenerationParams  # noqa: E402
from goldennoise.prompts import parse_prompts  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model() -> models.LoadedModel:
    return models.load_model("tiny-flux")


@pytest.fixture(scope="session")
def tiny_clip() -> scoring.ClipScorer:
    return scoring.load_clip("tiny-clip")


@pytest.fixture
def params() -> GenerationParams:
    return GenerationParams(num_inference_steps=4, guidance_scale=0.0, height=128, width=128, max_sequence_length=64)


@pytest.fixture
def three_prompts():
    return parse_prompts(b"a red cat\na blue house by the sea\n<b>bold</b> <script>alert(1)</script> prompt\n", "three.txt")


@pytest.fixture
def engine(tmp_path, tiny_model, tiny_clip) -> Engine:
    """An engine on tmp outputs that reuses the session's loaded tiny model and CLIP."""
    engine = Engine(tmp_path / "outputs")
    engine.model, engine.clip = tiny_model, tiny_clip
    yield engine
    engine.close()  # the next test's engine shares the pipeline: no prefetch may outlive this one


@pytest.fixture
def small_settings() -> session.Settings:
    settings = session.default_settings("tiny-flux")
    settings.height = settings.width = 128
    settings.seed_strategy, settings.start_seed = "sequential", 100
    return settings


@pytest.fixture(scope="session")
def planted(tmp_path_factory, tiny_model, tiny_clip):
    """Outputs of two annotators judging 40 prompts by a planted noise rule (see tests/planted.py)."""
    from tests.planted import make_dataset

    engine = Engine(tmp_path_factory.mktemp("planted") / "outputs")
    engine.model, engine.clip = tiny_model, tiny_clip
    store = make_dataset(engine)
    engine.close()
    return engine.outputs, store
