"""Each attention module against an independent, loop-based formula of the reference maths."""
import pytest
import torch
import torch.nn.functional as F

from resvariants.models.attention import (BAM, CBAM, SGE, SRM, SEModule, SKFusion,
                                          attention_aliases, build_attention)


def _randomise(module):
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.5)
        for name, b in module.named_buffers():
            if name.endswith('running_var'):
                b.uniform_(0.5, 2.0)
            elif name.endswith('running_mean'):
                b.normal_(0, 0.2)
    return module


def test_se_matches_formula():
    m = _randomise(SEModule(32, ratio=4)).eval()
    x = torch.randn(2, 32, 5, 7)
    s = x.mean(dim=(2, 3))
    w1, b1 = m.conv1.conv.weight[:, :, 0, 0], m.conv1.conv.bias
    w2, b2 = m.conv2.conv.weight[:, :, 0, 0], m.conv2.conv.bias
    gate = torch.sigmoid(F.relu(s @ w1.T + b1) @ w2.T + b2)
    torch.testing.assert_close(m(x), x * gate[:, :, None, None])
    assert m.conv1.conv.out_channels == 8  # C // ratio, no rounding to 8


def test_cbam_matches_formula_and_spatial_order():
    m = _randomise(CBAM(32, ratio=4)).eval()
    x = torch.randn(2, 32, 6, 5)
    mlp = lambda v: m.channel_fc2(F.relu(m.channel_fc1(v)))  # noqa: E731
    gate_c = torch.sigmoid(mlp(x.mean((2, 3))) + mlp(x.amax((2, 3))))
    y = x * gate_c[:, :, None, None]
    comp = torch.cat([y.max(1, keepdim=True)[0], y.mean(1, keepdim=True)], 1)  # max first
    bn = m.spatial_bn
    s = F.conv2d(comp, m.spatial_conv.weight, padding=3)
    s = (s - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
        bn.running_var.view(1, -1, 1, 1) + bn.eps) * bn.weight.view(1, -1, 1, 1) + bn.bias.view(
            1, -1, 1, 1)
    torch.testing.assert_close(m(x), y * torch.sigmoid(s))
    assert m.spatial_bn.momentum == 0.01


def test_cbam_reference_init():
    m = CBAM(64)
    m.init_weights()
    assert torch.all(m.spatial_bn.weight == 0)
    assert torch.all(m.channel_fc1.bias == 0) and torch.all(m.channel_fc2.bias == 0)


def _sge_reference(x, weight, bias, groups, eps=1e-5):
    """The reference's per-group loop, written plainly."""
    b, c, h, w = x.shape
    out = torch.empty_like(x)
    cg = c // groups
    for n in range(b):
        for g in range(groups):
            xg = x[n, g * cg:(g + 1) * cg]  # cg, h, w
            sim = (xg * xg.mean(dim=(1, 2), keepdim=True)).sum(0).flatten()
            sim = (sim - sim.mean()) / (sim.std() + eps)
            t = sim * weight[0, g, 0, 0] + bias[0, g, 0, 0]
            out[n, g * cg:(g + 1) * cg] = xg * torch.sigmoid(t).view(1, h, w)
    return out


def test_sge_matches_reference_loop():
    m = _randomise(SGE(32, groups=8))
    x = torch.randn(2, 32, 5, 6)
    torch.testing.assert_close(m(x), _sge_reference(x, m.weight, m.bias, 8))


def test_sge_init_and_no_nan_on_1x1():
    m = SGE(64, groups=64)
    assert torch.all(m.weight == 0) and torch.all(m.bias == 1)
    _randomise(m)
    x = torch.randn(2, 64, 1, 1)
    out = m(x)
    assert torch.isfinite(out).all()
    # one channel per group: the centred similarity is 0, so the gate is sigmoid(bias)
    torch.testing.assert_close(out, x * torch.sigmoid(m.bias))


def test_sge_rejects_indivisible_channels():
    with pytest.raises(ValueError, match='divisible'):
        SGE(48, groups=64)


def test_srm_matches_formula_and_1x1():
    m = _randomise(SRM(16)).eval()
    x = torch.randn(3, 16, 4, 5)
    flat = x.flatten(2)
    mean, std = flat.mean(2), (flat.var(2, unbiased=True) + 1e-5).sqrt()
    z = mean * m.cfc[:, 0] + std * m.cfc[:, 1]
    z = (z - m.bn.running_mean) / torch.sqrt(m.bn.running_var + m.bn.eps) * m.bn.weight + m.bn.bias
    torch.testing.assert_close(m(x), x * torch.sigmoid(z)[:, :, None, None])
    assert torch.isfinite(m(torch.randn(3, 16, 1, 1))).all()
    assert SRM(16).cfc.abs().sum() == 0


def test_bam_product_of_branches_any_size_and_batch1_train():
    m = _randomise(BAM(64)).eval()
    x = torch.randn(2, 64, 9, 13)  # non-square, odd
    gate = torch.sigmoid(m.channel_map(x) * m.spatial_map(x))
    torch.testing.assert_close(m(x), x * (1 + gate))
    assert m(x).shape == x.shape
    m.train()
    out = m(torch.randn(1, 64, 7, 11))  # batch 1 in train mode: the reference raises
    assert torch.isfinite(out).all() and out.shape == (1, 64, 7, 11)
    assert torch.isfinite(m(torch.randn(1, 64, 1, 1))).all()


def test_sk_fusion_softmax_selection():
    m = _randomise(SKFusion(32, ratio=16)).eval()
    a, b = torch.randn(2, 32, 4, 4), torch.randn(2, 32, 4, 4)
    s = a.mean((2, 3), keepdim=True) + b.mean((2, 3), keepdim=True)
    h = F.relu(m.bn_fc1(m.conv_fc1(s)))
    logits = m.conv_fc2(h).view(2, 2, 32, 1, 1)
    w = logits.softmax(1)
    torch.testing.assert_close(m([a, b]), w[:, 0] * a + w[:, 1] * b)
    assert m.conv_fc1.out_channels == 2  # no floor on the reduction


@pytest.mark.parametrize('name', sorted(attention_aliases()))
def test_factory_builds_every_alias_shape_preserving(name):
    m = build_attention(name, 128).eval()
    x = torch.randn(2, 128, 6, 5)
    assert m(x).shape == x.shape


def test_factory_unknown_name_lists_valid_ones():
    with pytest.raises(KeyError, match='valid names: .*cbam.*sge'):
        build_attention('sgee', 64)
