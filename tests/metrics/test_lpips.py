"""LPIPS Flax port against torch references, with randomly initialised backbones.

The `lpips` package needs torchvision, which has no CPU wheel matching the pinned torch here
(installing it pulls CUDA torch), so two references are used:
1. Always (torch only): `_ReferenceLPIPS` below restates lpips v0.1's forward pass in torch
   (ScalingLayer constants, lpips's slice boundaries, normalize_tensor, squared difference,
   1x1 lin conv, spatial mean, sum) on torchvision's exact `features` layouts.
2. The `lpips` package itself (README's test command installs it with --no-deps): its own
   LPIPS class, its real v0.1 lin weights, and a torchvision stand-in module that returns
   the same torchvision `features` layouts with random weights.
Both save the backbone in torchvision's key layout and load it through our file reader.
Tolerance: float32 on both sides, different conv algorithms; values are O(0.1-1), so
rtol 1e-4 (atol 1e-6) leaves room for accumulated rounding over 13 VGG layers.
"""

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.metrics import lpips as ft_lpips

import torch
nn = torch.nn

VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
SLICES = {"alex": ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)),
          "vgg": ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))}
SIZES = {"alex": 48, "vgg": 16}  # smallest sizes that keep every tapped layer non-empty


def torchvision_features(net):
    """torchvision.models.alexnet().features / vgg16().features, layer for layer."""
    if net == "alex":
        return nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
    layers, channels = [], 3
    for width in VGG16_CFG:
        if width == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
    return nn.Sequential(*layers)


def random_features(net, seed):
    torch.manual_seed(seed)
    features = torchvision_features(net)
    for layer in features:  # He init keeps activations O(1) through the deep VGG stack
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.uniform_(layer.bias, -0.1, 0.1)
    return features.eval()


class _ReferenceLPIPS(nn.Module):
    """lpips.LPIPS(version='0.1', lpips=True, spatial=False).forward, restated."""

    def __init__(self, net, features, lin_weights):
        super().__init__()
        self.slices = [features[a:b] for a, b in SLICES[net]]
        self.lin_weights = lin_weights
        self.shift = torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None]
        self.scale = torch.tensor([0.458, 0.448, 0.450])[None, :, None, None]

    def forward(self, in0, in1):
        h0, h1 = (in0 - self.shift) / self.scale, (in1 - self.shift) / self.scale
        total = 0
        for block, weight in zip(self.slices, self.lin_weights):
            h0, h1 = block(h0), block(h1)
            f0 = h0 / (torch.sqrt(torch.sum(h0**2, dim=1, keepdim=True)) + 1e-10)
            f1 = h1 / (torch.sqrt(torch.sum(h1**2, dim=1, keepdim=True)) + 1e-10)
            total = total + nn.functional.conv2d((f0 - f1) ** 2, weight).mean([2, 3])
        return total[:, 0]


def _save_backbone(features, path, legacy):
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.1.weight"] = torch.zeros(4, 4)  # torchvision files carry it too
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)


def _images(net, seed=0):
    rng = np.random.default_rng(seed)
    size = SIZES[net]
    a = rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    b = np.clip(a + 0.3 * rng.standard_normal(a.shape), -1, 1).astype(np.float32)
    return a, b


def _to_torch(x):
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_restated_lpips(net, tmp_path):
    features = random_features(net, seed=1)
    torch.manual_seed(2)
    widths = [features[b - 2].out_channels for _, b in SLICES[net]]
    lin = [torch.rand(1, c, 1, 1) for c in widths]
    backbone_path, lin_path = tmp_path / "backbone.pth", tmp_path / "lin.pth"
    # torchvision's VGG16 file is legacy-format; the legacy path is exercised on the smaller
    # AlexNet here (test time) and on hand-made files in tests/utils/test_torch_weights.py.
    _save_backbone(features, backbone_path, legacy=(net == "alex"))
    torch.save({f"lin{i}.model.1.weight": w for i, w in enumerate(lin)}, lin_path,
               _use_new_zipfile_serialization=False)
    a, b = _images(net)
    with torch.no_grad():
        ref = _ReferenceLPIPS(net, features, lin)(_to_torch(a), _to_torch(b)).numpy()
    model = ft_lpips.load_lpips(net, backbone_path, lin_path)
    # batch_size=1: leading axes are flattened and run pair by pair (one compiled shape).
    ours = np.asarray(ft_lpips.lpips_distance(model, a[None], b[None], batch_size=1))[0]
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)
    assert ref.min() > 0.01  # the comparison is not between zeros
    same = ft_lpips.lpips_distance(model, (a + 1) / 2, (a + 1) / 2, normalize=True, batch_size=1)
    np.testing.assert_allclose(np.asarray(same), 0.0, atol=1e-7)


@pytest.fixture
def torchvision_stand_in(monkeypatch):
    """A `torchvision` module whose models return torchvision's layouts, randomly initialised."""
    built = {}

    def make(net):
        def constructor(pretrained=False, **_):
            assert not pretrained, "the stand-in has no ImageNet weights"
            built[net] = random_features(net, seed=3)
            return types.SimpleNamespace(features=built[net])
        return constructor

    models = types.ModuleType("torchvision.models")
    models.alexnet, models.vgg16 = make("alex"), make("vgg")
    package = types.ModuleType("torchvision")
    package.models = models
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    for name in [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]:
        monkeypatch.delitem(sys.modules, name)
    return built


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_lpips_package(net, tmp_path, torchvision_stand_in):
    import lpips

    reference = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)  # real v0.1 lin layers
    backbone_path = tmp_path / "backbone.pth"
    _save_backbone(torchvision_stand_in[net], backbone_path, legacy=False)
    lin_path = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    a, b = _images(net, seed=4)
    with torch.no_grad():
        ref = reference(_to_torch(a), _to_torch(b)).numpy().reshape(-1)
    model = ft_lpips.load_lpips(net, backbone_path, lin_path)
    np.testing.assert_allclose(np.asarray(ft_lpips.lpips_distance(model, a, b)), ref,
                               rtol=1e-4, atol=1e-6)


def test_unavailable_without_weights():
    model, reason = ft_lpips.try_load_lpips("alex", None, None)
    assert model is None and reason.startswith("unavailable")


def test_wrong_backbone_is_a_model_file_error(tmp_path):
    _save_backbone(random_features("alex", seed=0), tmp_path / "alex.pth", legacy=False)
    torch.save({f"lin{i}.model.1.weight": torch.ones(1, c, 1, 1)
                for i, c in enumerate((64, 128, 256, 512, 512))}, tmp_path / "lin.pth")
    with pytest.raises(ModelFileError, match="shape"):
        ft_lpips.load_lpips("vgg", tmp_path / "alex.pth", tmp_path / "lin.pth")
