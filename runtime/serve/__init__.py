"""vae-serve: the runtime as an HTTP API that batches concurrent requests (pip install "vae-digits[serve]").

Nothing here is imported by `vae_runtime` itself: the plain runtime install has no server dependencies.
"""
