"""The console scripts: one module per command (vae-generate, vae-explore, vae-eval), on typer."""
