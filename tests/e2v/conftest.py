"""The e2v tests' config helper; their dataset is the root conftest's `tiny_dataset`."""


def quick_config(dataset, *overrides):
    from flashtalker_jax.config import load_config

    return load_config("pretrain_e2v:quick", [f"task.dataset={dataset}", *overrides])
