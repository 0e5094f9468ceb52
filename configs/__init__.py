"""Hydra configs of initbench; installed as the package ``initbench.configs``."""
