"""The JSON bodies of vae-serve's routes: what the OpenAPI schema shows and requests are checked against.

Strict: "16" is not a count and true is not a label. The bundle checks the rest (label names, the
latent size) with the Generator's own checks.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vae_runtime.manifest import MAX_TEMPERATURE

MAX_ROWS = 100_000  # z rows of one /v1/decode body (the server's --max-queue bounds it further)

Label = int | str
Labels = Label | list[Label] | None
Format = Literal["json", "npy", "png"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class GenerateRequest(Strict):
    bundle: str | None = Field(None, description="A bundle this server loaded (default: its first).")
    labels: Labels = Field(
        None,
        description="A label (int or name) or a list of them, each drawn `count` times; "
        "null: every label of a CVAE (a plain VAE takes none).",
        examples=[[7]],
    )
    count: int = Field(1, ge=1, le=MAX_ROWS, description="Digits per label.")
    seed: int | None = Field(None, ge=0, lt=2**64, description="Same seed, same digits; null: random.")
    temperature: float | None = Field(
        None, gt=0, le=MAX_TEMPERATURE, description="Scale of the latent noise (null: the bundle's)."
    )
    format: Format = Field(
        "json",
        description="json: the digits as nested lists; npy: a uint8 (N, 28, 28) .npy file; "
        "png: a grid as vae-generate draws it (a row per label).",
    )


class DecodeRequest(Strict):
    bundle: str | None = None
    z: list[list[float]] | list[float] = Field(
        description="Latents (N, latent size), or one latent.", max_length=MAX_ROWS, examples=[[[0.0, 0.0]]]
    )
    labels: Labels = Field(None, description="A CVAE's label for every row, or one for all rows.")
    values: Literal["grey", "float"] = Field(
        "grey", description="grey: uint8 grey levels as generate gives them; float: the decoder's [0, 1]."
    )
    format: Format = "json"


class Digits(BaseModel):
    """format "json": the digits, 0 = black."""

    bundle: str
    labels: list[str] | None = Field(description="The label name of every digit (CVAE), else null.")
    shape: list[int] = Field(examples=[[1, 28, 28]])
    digits: list[list[list[float]]] = Field(description="uint8 grey levels, or floats in [0, 1].")


class Encoded(BaseModel):
    bundle: str
    z_mean: list[float]
    z_log_var: list[float]


class BundleInfo(BaseModel):
    name: str
    kind: str
    latent_dim: int
    labels: list[str]
    default_temperature: float
    default: bool = Field(description="Taken when a request names no bundle.")


class Status(BaseModel):
    status: Literal["alive", "ready"]


class Error(BaseModel):
    error: str = Field(description="What was wrong, in one line.")
