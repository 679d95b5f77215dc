"""Model names resolve as users type them; schedulers are per call, never shared mutation."""

from pathlib import Path

import pytest

from goldennoise.generation import models


@pytest.mark.parametrize(
    "name,source",
    [("tiny-flux", "tiny-flux"), ("FLUX.1-schnell", "black-forest-labs/FLUX.1-schnell"),
     ("black-forest-labs/FLUX.1-schnell", "black-forest-labs/FLUX.1-schnell"), (" some/model ", "some/model")],
)
def test_resolve(name, source):
    assert models.resolve(name).source == source


def test_known_defaults():
    schnell = models.resolve("FLUX.1-schnell")
    assert (schnell.num_inference_steps, schnell.guidance_scale, schnell.max_sequence_length) == (4, 0.0, 256)
    assert models.resolve("FLUX.1-dev").guidance_scale == 3.5


@pytest.mark.parametrize("name", ["", "not a model", "../no-such-folder", "a/b/c", "nothing-like-this"])
def test_unknown_names_list_the_choices(name):
    with pytest.raises(models.ModelLoadError, match="FLUX.1-schnell|none given"):
        models.resolve(name)


def test_uncached_hub_id_fails_with_a_clear_message():
    with pytest.raises(models.ModelLoadError, match="'nobody/no-such-model' is not in the local cache"):
        models.load_model("nobody/no-such-model")


def test_local_folder_loads_through_the_same_path(tiny_model):
    from goldennoise.generation import tiny

    folder = tiny.tiny_model_path("tiny-flux")
    loaded = models.load_model(str(folder))
    assert loaded.pipeline_class == "FluxPipeline" and loaded.revision == tiny_model.revision
    assert not loaded.pipe.transformer.training


def test_error_messages_do_not_reveal_server_paths(tmp_path):
    import os

    for name in ("~/x", "../../etc", "./"):
        with pytest.raises(models.ModelLoadError) as caught:
            models.load_model(name)
        assert str(Path.home()) not in str(caught.value) and os.getcwd() not in str(caught.value)
    with pytest.raises(models.ModelLoadError) as missing:
        models.resolve("../no-such-folder")
    with pytest.raises(models.ModelLoadError) as present:
        models.resolve("../" + tmp_path.name)  # exists or not: the same words
    assert str(missing.value).split("'")[2] == str(present.value).split("'")[2]


def test_gated_model_says_how_to_get_access():
    from huggingface_hub.errors import GatedRepoError

    from goldennoise.generation import hub

    import httpx

    response = httpx.Response(401, request=httpx.Request("GET", "https://huggingface.co/x"))
    text = hub.explain_load_error("black-forest-labs/FLUX.1-dev", GatedRepoError("401 gated", response=response))
    assert "accept the licence" in text and "HF_TOKEN" in text


def test_scheduler_view_leaves_the_shared_pipeline_alone(tiny_model):
    names = models.compatible_schedulers(tiny_model.pipe)
    assert names[0] == "FlowMatchEulerDiscreteScheduler"
    assert models.with_scheduler(tiny_model.pipe, None) is tiny_model.pipe
    with pytest.raises(ValueError, match="does not fit"):
        models.with_scheduler(tiny_model.pipe, "DDIMScheduler")
    sd = models.load_model("tiny-sd")
    shared = sd.pipe.scheduler
    view = models.with_scheduler(sd.pipe, "DDIMScheduler")
    assert type(view.scheduler).__name__ == "DDIMScheduler" and view.unet is sd.pipe.unet  # weights shared
    view.scheduler.set_timesteps(3)
    assert sd.pipe.scheduler is shared and type(shared).__name__ == "EulerDiscreteScheduler"  # the shared one kept
