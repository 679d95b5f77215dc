"""open_clip checkpoints as transformers `CLIPModel`s: the architecture config and the key mapping, both ways.

open_clip is not a dependency (it needs torchvision, which does not import beside
the CPU torch used here), so its checkpoints are mapped onto the same architecture
in transformers. open_clip's `CLIP` (the layout of HPSv2's checkpoints) keeps the
text tower at the top level and the vision tower under `visual.`; a residual block
is `ln_1, attn (nn.MultiheadAttention: in_proj_weight = [q; k; v]), ln_2,
mlp.c_fc, mlp.c_proj`; projections are matrices applied as `x @ proj`, so they are
the transpose of transformers' bias-free `Linear` weights. GELU is exact (not
QuickGELU) for the LAION models; LayerNorm eps is 1e-5 in both. `to_open_clip` is
the inverse, used to write the offline stand-in in open_clip's layout.
"""

from __future__ import annotations

import re

import torch

# (open_clip name, transformers name) inside a residual block, and the blocks' prefixes (before the index).
_BLOCK = [("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("attn.out_proj", "self_attn.out_proj"),
          ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")]
_TOWERS = [("visual.transformer.resblocks.", "vision_model.encoder.layers."),
           ("transformer.resblocks.", "text_model.encoder.layers.")]
_PLAIN = {
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight", "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight", "ln_final.bias": "text_model.final_layer_norm.bias",
    "logit_scale": "logit_scale",
}
_TRANSPOSED = {"visual.proj": "visual_projection.weight", "text_projection": "text_projection.weight"}
# Buffers open_clip may have saved that carry no weights (the causal mask is rebuilt by transformers).
IGNORED = ("attn_mask",)


def clip_config(cfg: dict, eos_token_id: int, bos_token_id: int | None = None, pad_token_id: int | None = None):
    """A transformers `CLIPConfig` equal to open_clip's model config `cfg` (its model_configs/*.json form)."""
    from transformers import CLIPConfig

    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    v_width, t_width = vision["width"], text["width"]
    return CLIPConfig(
        vision_config=dict(hidden_size=v_width, num_hidden_layers=vision["layers"],
                           num_attention_heads=v_width // vision.get("head_width", 64),
                           intermediate_size=int(v_width * vision.get("mlp_ratio", 4.0)),
                           image_size=vision["image_size"], patch_size=vision["patch_size"], hidden_act="gelu",
                           layer_norm_eps=1e-5),
        text_config=dict(hidden_size=t_width, num_hidden_layers=text["layers"], num_attention_heads=text["heads"],
                         intermediate_size=int(t_width * text.get("mlp_ratio", 4.0)),
                         vocab_size=text["vocab_size"], max_position_embeddings=text["context_length"],
                         hidden_act="gelu", layer_norm_eps=1e-5, eos_token_id=eos_token_id,
                         bos_token_id=bos_token_id, pad_token_id=pad_token_id),
        projection_dim=cfg["embed_dim"])


def from_open_clip(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(transformers `CLIPModel` state dict, open_clip keys not used) for an open_clip `CLIP` state dict."""
    out, unused = {}, []
    for key, value in state.items():
        if key in _PLAIN:
            out[_PLAIN[key]] = value
        elif key in _TRANSPOSED:
            out[_TRANSPOSED[key]] = value.T.contiguous()  # x @ proj == Linear with weight proj.T
        elif (block := _block(key)) is not None:
            target, rest = block
            if rest.startswith("attn.in_proj_"):  # rows [q; k; v] -> three Linears
                kind = rest.removeprefix("attn.in_proj_")  # "weight" or "bias"
                for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                    out[f"{target}self_attn.{name}.{kind}"] = part.contiguous()
            elif (renamed := _rename(rest, _BLOCK)) is not None:
                out[target + renamed] = value
            else:
                unused.append(key)
        else:
            unused.append(key)
    return out, [k for k in unused if not k.endswith(IGNORED)]


def to_open_clip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `from_open_clip` (for writing the offline stand-in in open_clip's layout)."""
    plain = {v: k for k, v in _PLAIN.items()}
    transposed = {v: k for k, v in _TRANSPOSED.items()}
    out, qkv = {}, {}
    for key, value in state.items():
        if key in plain:
            out[plain[key]] = value
        elif key in transposed:
            out[transposed[key]] = value.T.contiguous()
        else:
            for open_clip_prefix, prefix in _TOWERS:
                if key.startswith(prefix):
                    index, rest = key.removeprefix(prefix).split(".", 1)
                    if (m := re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", rest)):
                        qkv.setdefault(f"{open_clip_prefix}{index}.attn.in_proj_{m[2]}", {})[m[1]] = value
                    else:
                        out[f"{open_clip_prefix}{index}.{_rename(rest, [(b, a) for a, b in _BLOCK])}"] = value
    for key, parts in qkv.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def _block(key: str) -> tuple[str, str] | None:
    """(transformers prefix of the block, the rest of the open_clip key) for a residual-block key."""
    for open_clip_prefix, prefix in _TOWERS:
        if key.startswith(open_clip_prefix):
            index, rest = key.removeprefix(open_clip_prefix).split(".", 1)
            return f"{prefix}{index}.", rest
    return None


def _rename(rest: str, table) -> str | None:
    for old, new in table:
        if rest.startswith(old + "."):
            return new + rest.removeprefix(old)
    return None
