"""The digits model's architecture and training recipe, in one place.

The UNet is diffusers' `UNet2DModel` on the 8x8 grid itself (no VAE): two levels of
plain ResNet blocks (32, 64 channels; the mid block has one attention layer), a
class embedding with 11 rows, where row 10 is the "null" class that label dropout
teaches, so classifier-free guidance can contrast "digit d" with "any digit".
About 652k parameters, 2.6 MB as float32 safetensors.

Flow matching, as FLUX and SD3 are trained: x_t = (1 - t) x0 + t eps with t ~ U(0, 1),
the network is given timestep 1000 t (what `FlowMatchEulerDiscreteScheduler` feeds it
at sampling time) and predicts the velocity eps - x0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UNet2DModel

NULL_CLASS = 10  # the class label meaning "no digit asked": classifier-free guidance's unconditional branch
NUM_TRAIN_TIMESTEPS = 1000  # the scheduler's; timestep = 1000 * t
UNET_CONFIG = dict(
    sample_size=8, in_channels=1, out_channels=1,
    block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8,
    down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
    num_class_embeds=NULL_CLASS + 1,
)
SCHEDULER_CONFIG = dict(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=1.0, use_dynamic_shifting=False)


@dataclass(frozen=True)
class TrainConfig:
    """The training run's settings; the defaults are the recipe the shipped weights were trained with."""

    seed: int = 0
    steps: int = 1900  # 150-190 ms per step on an idle CPU thread (~5-6 min); 520-669 s measured beside other jobs
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-2  # AdamW's default
    warmup_steps: int = 50
    label_dropout: float = 0.1  # share of labels replaced by NULL_CLASS
    ema_decay: float = 0.995  # the EMA weights are the ones saved

    def to_dict(self) -> dict:
        return asdict(self)


def build_unet(seed: int = 0):
    """A freshly initialised `UNet2DModel` of the recipe's config (random weights under `seed`), in eval mode."""
    torch.manual_seed(seed)
    return UNet2DModel(**UNET_CONFIG).eval()


def build_scheduler():
    """The sampling scheduler: flow-matching Euler, sigma from 1 to 0, no shift."""
    return FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)
