"""Config files (one per job and paper preset), installed as `flashtalker_jax.configs`.

Each file defines get_config() -> ml_collections.ConfigDict and is loaded by path through
flashtalker_jax.config.load_config (never imported as a module), e.g. `--config adapt_cpu`.
"""
