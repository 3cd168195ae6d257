"""The bundle format's limits and rules, read from bundle_spec.json.

One data file holds them for every runtime: vae_runtime reads it here (manifest.py, prior.py and the
generator take their limits from `SPEC`), and the browser library reads the same values from
web/lib/spec.js, which web/make_spec.py generates from it (CI checks that it is up to date).

Example:
    >>> SPEC["manifest"]["max_latent_dim"], SPEC["digit"]["fit"]
    (256, 20)
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

SPEC_FILE = "bundle_spec.json"
SPEC: dict[str, Any] = json.loads(resources.files("vae_runtime").joinpath(SPEC_FILE).read_text("utf-8"))
