"""The velocity networks: shapes, time dependence, gradients."""

from __future__ import annotations

import pytest
import torch

from kacnb.cfm.models import MLP, UNet, architecture, build, sinusoidal_embedding


@pytest.mark.parametrize("base,levels", [(16, 3), (8, 2)])
def test_unet_maps_images_to_velocities_of_the_same_shape(base, levels):
    torch.manual_seed(0)
    net = UNet(channels=1, base=base, levels=levels, blocks=2)
    x = torch.randn(3, 1, 28, 28)
    out = net(torch.rand(3), x)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_unet_depends_on_time_and_gradients_reach_every_parameter():
    torch.manual_seed(1)
    net = UNet(base=8)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        a, b = net(torch.full((2,), 0.1), x), net(torch.full((2,), 0.9), x)
        # Times differing by 1e-3 (a fine Euler grid) still give different outputs.
        c = net(torch.full((2,), 0.101), x)
    assert float((a - b).abs().max()) > 1e-4
    assert float((a - c).abs().max()) > 0
    net(torch.rand(2), x).pow(2).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_unet_default_is_the_papers_light_unet():
    net = UNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    widths = sorted({m.out_channels for m in convs if m.out_channels > 1})
    assert widths == [64, 128, 256]  # 64 base channels, doubling at each downsampling
    assert len(net.down) == 3 and all(len(level) == 2 for level in net.down)


def test_sinusoidal_embedding_is_bounded_and_distinguishes_times():
    e = sinusoidal_embedding(torch.tensor([0.0, 0.5, 1.0]), 32)
    assert e.shape == (3, 32)
    assert float(e.abs().max()) <= 1.0
    assert torch.allclose(e[0, :16], torch.ones(16)) and torch.allclose(e[0, 16:], torch.zeros(16))
    assert float((e[1] - e[2]).norm()) > 0.1
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(torch.zeros(1), 3)


def test_mlp_shape():
    assert MLP(dim=2)(torch.rand(5), torch.randn(5, 2)).shape == (5, 2)


def test_mlp_is_the_papers_network_on_x_and_t():
    """paper Section 7.1: fully connected, input (x, t), three hidden layers of 256, ReLU."""
    net = MLP(dim=2)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (3, 256),
        (256, 256),
        (256, 256),
        (256, 2),
    ]
    assert sum(isinstance(m, torch.nn.ReLU) for m in net.modules()) == 3
    # The input is (x, t) in this order: with the first layer's weights on x set to zero the
    # output no longer depends on x, with the weight on the last input (t) set to zero it no
    # longer depends on t.
    torch.manual_seed(3)
    x, x2 = torch.randn(6, 2), torch.randn(6, 2)
    t, t2 = torch.rand(6), torch.rand(6)
    first = linears[0]
    with torch.no_grad():
        assert float((net(t, x) - net(t, x2)).abs().max()) > 1e-4
        assert float((net(t, x) - net(t2, x)).abs().max()) > 1e-4
        saved = first.weight.clone()
        first.weight[:, :2] = 0.0
        assert torch.equal(net(t, x), net(t, x2))
        assert float((net(t, x) - net(t2, x)).abs().max()) > 1e-4
        first.weight.copy_(saved)
        first.weight[:, 2] = 0.0
        assert torch.equal(net(t, x), net(t2, x))
        assert float((net(t, x) - net(t, x2)).abs().max()) > 1e-4


def test_mlp_gradients_reach_every_parameter_and_rows_are_independent():
    """Each row of the batch is its own sample (no mixing across the batch), time enters per
    row (broadcast from shape (B,)), and a loss reaches every weight with a finite gradient."""
    torch.manual_seed(4)
    net = MLP(dim=2, width=32)
    x = torch.randn(5, 2, requires_grad=True)
    t = torch.rand(5)
    out = net(t, x)
    out[2].sum().backward()
    assert torch.all(x.grad[[0, 1, 3, 4]] == 0) and float(x.grad[2].abs().sum()) > 0
    single = net(t[2:3], x[2:3].detach())
    torch.testing.assert_close(single[0], out[2].detach())
    net.zero_grad()
    net(torch.rand(5), torch.randn(5, 2)).pow(2).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().sum()) > 0, name


def test_mlp_architecture_is_checked_before_allocating():
    import time

    from kacnb.cfm.models import StackedMLP, mlp_parameters

    for kwargs, name in [
        ({"width": 0}, "width"),
        ({"depth": 0}, "depth"),
        ({"dim": 0}, "dim"),
        ({"width": 2.5}, "width"),
        ({"depth": True}, "depth"),
    ]:
        with pytest.raises(ValueError, match=rf"^{name} must be an integer >= 1"):
            MLP(**kwargs)
        with pytest.raises(ValueError, match=rf"^{name} must be an integer >= 1"):
            StackedMLP(2, **kwargs)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"width 100,000, depth 3 \(20,000,800,002 weights\)"):
        MLP(width=100_000)  # 80 GB of float32 weights
    with pytest.raises(ValueError, match=r"would need .* GiB"):
        StackedMLP(1000, width=2048, depth=3)
    assert time.perf_counter() - start < 1.0
    net = MLP(dim=3, width=7, depth=2)
    assert sum(p.numel() for p in net.parameters()) == mlp_parameters(3, 7, 2)


def _shapes(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: MLP(dim=3, width=5, depth=2), {"arch": "mlp", "dim": 3, "width": 5, "depth": 2}),
        (lambda: MLP(), {"arch": "mlp", "dim": 2, "width": 256, "depth": 3}),
        (
            lambda: UNet(channels=2, base=8, levels=2, blocks=1),
            {"arch": "unet", "channels": 2, "base": 8, "levels": 2, "blocks": 1},
        ),
        (
            lambda: UNet(channels=1, base=16, levels=3, blocks=2),
            {"arch": "unet", "channels": 1, "base": 16, "levels": 3, "blocks": 2},
        ),
    ],
)
def test_build_of_architecture_reproduces_the_parameter_shapes(make, expected):
    torch.manual_seed(0)
    model = make()
    arch = architecture(model)
    assert arch == expected
    rebuilt = build(arch)
    assert type(rebuilt) is type(model)
    assert _shapes(rebuilt) == _shapes(model)
    rebuilt.load_state_dict(model.state_dict())  # strict: same keys, same shapes


def test_architecture_is_kept_out_of_the_state_dict():
    """The stored constructor arguments are plain attributes: checkpoints keep their keys."""
    assert list(MLP(dim=2, width=4, depth=2).state_dict()) == [
        "net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias", "net.4.weight", "net.4.bias",
    ]  # fmt: skip
    assert not any(k.split(".")[-1] in {"channels", "base", "levels", "blocks"}
                   for k in UNet(base=8, levels=1, blocks=1).state_dict())  # fmt: skip


def test_architecture_refuses_other_modules():
    with pytest.raises(TypeError, match="knows MLP and UNet, got Linear"):
        architecture(torch.nn.Linear(2, 2))


MLP_ARCH = {"arch": "mlp", "dim": 2, "width": 16, "depth": 2}
UNET_ARCH = {"arch": "unet", "channels": 1, "base": 8, "levels": 2, "blocks": 1}


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ({**MLP_ARCH, "width": 4097}, r"^width must be an integer from 1 to 4096, got 4097$"),
        ({**MLP_ARCH, "width": 0}, r"^width must be an integer from 1 to 4096, got 0$"),
        ({**MLP_ARCH, "depth": 17}, r"^depth must be an integer from 1 to 16, got 17$"),
        ({**MLP_ARCH, "dim": 65}, r"^dim must be an integer from 1 to 64, got 65$"),
        ({**MLP_ARCH, "dim": True}, r"^dim must be an integer from 1 to 64, got True$"),
        ({**MLP_ARCH, "width": "16"}, r"^width must be an integer .* got '16'$"),
        ({**MLP_ARCH, "width": 16.0}, r"^width must be an integer .* got 16\.0$"),
        ({k: v for k, v in MLP_ARCH.items() if k != "dim"}, r"^dim is missing"),
        ({**MLP_ARCH, "base": 8}, r"^base is not a field of arch 'mlp'"),
        ({**UNET_ARCH, "channels": 5}, r"^channels must be an integer from 1 to 4, got 5$"),
        ({**UNET_ARCH, "base": 100_000}, r"^base must be an integer from 1 to 256, got 100000$"),
        ({**UNET_ARCH, "levels": 0}, r"^levels must be an integer from 1 to 4, got 0$"),
        ({**UNET_ARCH, "blocks": 5}, r"^blocks must be an integer from 1 to 4, got 5$"),
        ({**UNET_ARCH, "base": 9}, r"^base must be even"),
        ({**UNET_ARCH, "base": 4}, r"^base 4 does not fit levels 2: num_channels \(12\)"),
        ({**UNET_ARCH, "arch": "transformer"}, r"^arch must be one of 'mlp', 'unet', got 'tr"),
        ({k: v for k, v in UNET_ARCH.items() if k != "arch"}, r"^arch must be one of .* None$"),
        ([1, 2], r"^an architecture must be a dict"),
    ],
)
def test_build_refuses_bad_fields_naming_them(arch, message, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(MLP, "__init__", never)
    with pytest.raises(ValueError, match=message) as info:
        build(arch)
    assert "\n" not in str(info.value)
