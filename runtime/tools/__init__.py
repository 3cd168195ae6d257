"""Tools built on the core `Generator`: pictures of a latent space, evaluation, image files."""
