"""Randomly initialised AlexNet-LPIPS weights in the loader's key layout (torchvision
`features.<i>.weight/bias`, OIHW; lpips `lin<l>.model.1.weight`), for tests that need a
working LPIPS network without downloads. The network itself is checked against torch in
tests/metrics/test_lpips.py."""
import numpy as np

from flashtalker_jax.metrics.lpips import LAYOUTS, TAPS


def random_alex_lpips(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(backbone arrays, lin-layer arrays), He-initialised convs, lin weights in [0, 1)."""
    rng = np.random.default_rng(seed)
    backbone = {}
    for index, layer in enumerate(LAYOUTS["alex"]):
        if layer[0] == "conv":
            _, cin, cout, k, _, _ = layer
            backbone[f"features.{index}.weight"] = (rng.normal(size=(cout, cin, k, k))
                                                    * np.sqrt(2 / (cin * k * k))).astype(np.float32)
            backbone[f"features.{index}.bias"] = rng.uniform(-0.1, 0.1, cout).astype(np.float32)
    widths = [LAYOUTS["alex"][t - 1][2] for t in TAPS["alex"]]  # conv before each tapped ReLU
    lin = {f"lin{i}.model.1.weight": rng.random((1, c, 1, 1)).astype(np.float32)
           for i, c in enumerate(widths)}
    return backbone, lin
