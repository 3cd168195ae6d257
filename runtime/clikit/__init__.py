"""The command-line kit that vae-train, vae-export and the runtime's commands share: typer conventions,
one-line errors with meaningful exit codes, and progress bars."""
