"""Records as compact bytes for the database, exactly: what a JSON line says, in about a third of the space.

Most of a 0.2 line was the noise fingerprints written as decimal text (96 numbers
per seed). Here every fingerprint list is packed as little-endian binary, float32
when every value is exactly a float32 (the draw and the latents are: the draw is
float32 and the latents are float32, bfloat16 or float16 values), float64 otherwise,
and base64-encoded; the JSON is then zlib-compressed. `decode(encode(r))` gives the
same JSON as the record's own line, value for value (a test checks it on every kind).
"""

from __future__ import annotations

import base64
import json
import sys
import zlib
from array import array

import numpy as np

LEVEL = 6
_PACKED = ("draw", "latents")


def _pack(values: list[float]) -> str:
    try:
        narrow = array("f", values)  # OverflowError: beyond float32's range, so not one
        if narrow.tolist() == list(values):
            return "f4:" + base64.b64encode(_little(narrow)).decode()
    except OverflowError:
        pass
    return "f8:" + base64.b64encode(_little(array("d", values))).decode()


def _little(values: array) -> bytes:
    if sys.byteorder != "little":
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _unpack(text: str) -> list[float]:
    kind, _, payload = text.partition(":")
    return np.frombuffer(base64.b64decode(payload), dtype="<" + kind).astype(float).tolist()


def _samples(data: dict):
    yield from data.get("samples") or []
    prefilter = data.get("prefilter") or {}
    yield from prefilter.get("hidden") or []


def _walk(data: dict, convert) -> None:
    for sample in _samples(data):
        fingerprint = (sample.get("noise") or {}).get("fingerprint")
        for key in _PACKED:
            if fingerprint and fingerprint.get(key) is not None:
                fingerprint[key] = convert(fingerprint[key])


def _converted(fingerprint: dict, convert) -> dict:
    """A copy of a fingerprint with its packed lists converted (`_pack` or `_unpack`), the rest as it is."""
    return {k: (convert(v) if k in _PACKED and v is not None else v) for k, v in fingerprint.items()}


def _packed(sample: dict) -> dict:
    """A copy of a sample whose fingerprint lists are packed (the rest shared with the caller's, not changed)."""
    noise = sample.get("noise")
    fingerprint = (noise or {}).get("fingerprint")
    if not fingerprint:
        return sample
    return {**sample, "noise": {**noise, "fingerprint": _converted(fingerprint, _pack)}}


def encode_data(data: dict) -> bytes:
    """Bytes of a record given as its JSON data (`schema.dump`); `data` is not changed."""
    if data.get("samples"):
        data = {**data, "samples": [_packed(s) for s in data["samples"]]}
    if data.get("prefilter"):
        data["prefilter"] = {**data["prefilter"], "hidden": [_packed(s) for s in data["prefilter"].get("hidden") or []]}
    return zlib.compress(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode(), LEVEL)


def decode_data(blob: bytes, unpack: bool = True) -> dict:
    """The record's JSON data (as its JSON line would parse) from `encode_data`'s bytes; with `unpack=False` its
    fingerprint lists stay packed text (`unpacked_noise` unpacks one block: a reader that keeps one copy of each
    distinct noise block unpacks it once, not once per answer)."""
    data = json.loads(zlib.decompress(blob))
    if unpack:
        _walk(data, _unpack)
    return data


def unpacked_noise(block: dict) -> dict:
    """A noise block whose fingerprint lists are as the record's JSON line has them (a copy when any was packed)."""
    fingerprint = block.get("fingerprint")
    if not fingerprint or not any(isinstance(fingerprint.get(k), str) for k in _PACKED):
        return block
    return {**block, "fingerprint": _converted(fingerprint, lambda v: _unpack(v) if isinstance(v, str) else v)}
