"""MONAI ResNets (10/18/50): output shapes for 1-3 channels, embeddings, description, local weights."""

from __future__ import annotations

import pytest
import torch

from alnm.deep.networks import adapt_first_conv, build_network, describe, embedding
from alnm.errors import AlnmInputError

torch.set_num_threads(2)


def _torchvision_dict(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A fake torchvision ImageNet checkpoint: a random 3-channel network with a 1000-class head, saved with
    RadImageNet/torchvision key names (identical to MONAI's, which the loader must accept)."""
    torch.manual_seed(seed)
    state = build_network(arch, 3).state_dict()
    width = state["fc.weight"].shape[1]
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, width), torch.randn(1000)
    return state


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_resnet18_gives_one_logit_and_512_features(channels):
    torch.manual_seed(0)
    model = build_network("resnet18", channels).eval()
    x = torch.randn(4, channels, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (4, 1)
        assert embedding(model, x).shape == (4, 512)
        assert torch.allclose(model.fc(embedding(model, x)), model(x), atol=1e-5)
    info = describe(model)
    assert info["arch"] == "resnet18" and info["in_channels"] == channels and info["embedding_size"] == 512
    assert info["pretrained"] is False and info["weights"] is None
    # The ImageNet layout: torchvision's ResNet18 has 11,689,512 parameters with its 1000-class head.
    assert info["parameters"] == 11_689_512 - 512 * 999 - 999 + (channels - 3) * 64 * 49


@pytest.mark.parametrize("channels", [1, 3])
def test_resnet50_forward(channels):
    model = build_network("resnet50", channels).eval()
    with torch.no_grad():
        assert model(torch.randn(2, channels, 32, 32)).shape == (2, 1)
        assert embedding(model, torch.randn(1, channels, 32, 32)).shape == (1, 2048)
    assert describe(model)["arch"] == "resnet50"


def test_resnet10_is_the_small_network_and_loads_its_own_weights_only(tmp_path):
    torch.manual_seed(0)
    model = build_network("resnet10", 2).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 2, 16, 16)).shape == (3, 1)
        assert embedding(model, torch.randn(3, 2, 16, 16)).shape == (3, 512)
    info = describe(model)
    assert info["arch"] == "resnet10" and info["embedding_size"] == 512
    assert info["parameters"] < describe(build_network("resnet18", 2))["parameters"] / 2
    torch.save(model.state_dict(), tmp_path / "resnet10.pt")  # e.g. saved after pretraining
    reloaded = build_network("resnet10", 2, weights=tmp_path / "resnet10.pt")
    assert torch.equal(
        reloaded.state_dict()["layer4.0.conv2.weight"], model.state_dict()["layer4.0.conv2.weight"]
    )
    torch.save(_torchvision_dict("resnet18"), tmp_path / "resnet18.pth")
    with pytest.raises(
        AlnmInputError, match=r"resnet18\.pth does not match a resnet10.*unexpected key layer1\.1"
    ):
        build_network("resnet10", 1, weights=tmp_path / "resnet18.pth")


def test_bad_arguments_are_named():
    with pytest.raises(AlnmInputError, match="arch: 'vgg16' is not one of resnet10, resnet18, resnet50"):
        build_network("vgg16", 1)
    with pytest.raises(AlnmInputError, match="in_channels"):
        build_network("resnet18", 0)
    with pytest.raises(AlnmInputError, match="model"):
        embedding(torch.nn.Linear(2, 1), torch.zeros(1, 2))


def test_first_conv_adaptation_preserves_grey_response():
    weight = torch.randn(64, 3, 7, 7)
    for k in (1, 2, 4):
        adapted = adapt_first_conv(weight, k)
        assert adapted.shape == (64, k, 7, 7)
        # k identical channels respond as 3 identical RGB channels do.
        assert torch.allclose(adapted.sum(dim=1), weight.sum(dim=1), atol=1e-5)
    assert torch.equal(adapt_first_conv(weight, 3), weight)


def test_torchvision_weights_round_trip_into_one_channel(tmp_path):
    state = _torchvision_dict("resnet18")
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(state, path)
    model = build_network("resnet18", 1, weights=path)
    loaded = model.state_dict()
    expected = state["conv1.weight"].mean(dim=1, keepdim=True) * 3
    assert torch.allclose(loaded["conv1.weight"], expected)
    assert torch.equal(loaded["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])
    assert torch.equal(
        loaded["layer2.0.downsample.1.running_var"], state["layer2.0.downsample.1.running_var"]
    )
    assert loaded["fc.weight"].shape == (1, 512)  # the 1000-class head is skipped
    info = describe(model)
    assert info["pretrained"] is True and info["weights"] == str(path)


def test_radimagenet_style_keys_and_wrapped_checkpoints(tmp_path):
    state = _torchvision_dict("resnet50")
    rename = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    radimagenet = {
        "backbone." + ".".join([rename[k.split(".")[0]], *k.split(".")[1:]]): v
        for k, v in state.items()
        if not k.startswith("fc.")
    }
    path = tmp_path / "RadImageNet-ResNet50_notop.pth"
    torch.save(
        {"state_dict": {"module." + k: v for k, v in radimagenet.items()}, "epoch": torch.tensor(3)}, path
    )
    model = build_network("resnet50", 3, weights=path)
    assert torch.equal(model.state_dict()["conv1.weight"], state["conv1.weight"])
    assert torch.equal(model.state_dict()["layer3.5.conv3.weight"], state["layer3.5.conv3.weight"])


def test_mismatching_weights_file_is_a_clear_error(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(_torchvision_dict("resnet50"), path)
    with pytest.raises(AlnmInputError, match=r"resnet50\.pth does not match a resnet18") as info:
        build_network("resnet18", 1, weights=path)
    assert "layer1.0.conv1.weight has shape (64, 64, 1, 1)" in str(info.value)
    small_stem = _torchvision_dict("resnet18")
    small_stem["conv1.weight"] = torch.randn(64, 3, 3, 3)
    torch.save(small_stem, tmp_path / "cifar.pth")
    with pytest.raises(AlnmInputError, match=r"conv1.weight has shape \(64, 3, 3, 3\)"):
        build_network("resnet18", 1, weights=tmp_path / "cifar.pth")
    with pytest.raises(AlnmInputError, match="does not exist"):
        build_network("resnet18", 1, weights=tmp_path / "absent.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(AlnmInputError, match="garbage.pth is not a readable torch state dict"):
        build_network("resnet18", 1, weights=garbage)
