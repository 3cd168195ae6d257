"""Readers of the fields of an untrusted JSON object (a manifest): each returns the value, or raises a
BundleError whose one line names the field."""

from __future__ import annotations

import math
from typing import Any

from vae_runtime.errors import BundleError


def is_dim(value: Any) -> bool:
    return value == "batch" or (
        isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 1 << 16
    )


def boolean(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise BundleError(f"manifest field {key!r} must be true or false")
    return value


def one_of(data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = data.get(key)
    if not isinstance(value, str) or value not in allowed:
        raise BundleError(f"manifest field {key!r} is {value!r}; expected one of {allowed}")
    return value


def bounded_int(data: dict[str, Any], key: str, high: int) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= high:
        raise BundleError(f"manifest field {key!r} must be an integer in 1-{high}")
    return value


def int_list(data: dict[str, Any], key: str, length: int) -> list[int]:
    value = data.get(key)
    if not isinstance(value, list) or len(value) != length:
        raise BundleError(f"manifest field {key!r} must list {length} positive integers")
    return [bounded_int({key: v}, key, 1 << 16) for v in value]


def mapping(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise BundleError(f"manifest field {key!r} must be an object")
    checked: dict[str, Any] = finite(value, key)
    return checked


def finite(value: Any, key: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise BundleError(f"manifest field {key!r} holds a non-finite number")
    if isinstance(value, dict):
        return {k: finite(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v, key) for v in value]
    return value
