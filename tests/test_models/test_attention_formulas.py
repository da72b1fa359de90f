"""Attention modules against hand computations of their source formulas at the edges the
general value tests do not reach: default constants, tiny maps, parameter shapes (the
PytorchInsight / official state-dict layouts). Found by mutation testing (docs/testing.md).
"""
import pytest
import torch

from _attention_cases import SOURCE_TYPES
from resvariants.models.attention import attention_types


def _srm_style_by_hand(x, eps=1e-5):
    b, c, h, w = x.shape
    flat = x.double().reshape(b, c, h * w)
    mean = flat.mean(2)
    ddof = 1 if h * w > 1 else 0  # the official unbiased variance; biased on a 1x1 map
    var = ((flat - mean[..., None])**2).sum(2) / (h * w - ddof)
    return mean, (var + eps).sqrt()


@pytest.mark.parametrize('fused', [True, False])
@pytest.mark.parametrize('shape', [(2, 4, 1, 1), (2, 4, 1, 2), (2, 4, 2, 1), (1, 4, 3, 3)])
def test_srm_style_pooling(shape, fused):
    srm = attention_types()['SRM'](4, fused=fused)
    assert srm.eps == 1e-5
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    mean, std = srm.style(x)
    expected_mean, expected_std = _srm_style_by_hand(x)
    torch.testing.assert_close(mean.double(), expected_mean)
    torch.testing.assert_close(std.double(), expected_std)


def test_srm_parameters_have_the_official_layout():
    srm = attention_types()['SRM'](8)
    assert dict((k, tuple(v.shape)) for k, v in srm.state_dict().items()) == {
        'cfc': (8, 2), 'bn.weight': (8, ), 'bn.bias': (8, ), 'bn.running_mean': (8, ),
        'bn.running_var': (8, ), 'bn.num_batches_tracked': ()}


@pytest.mark.parametrize('fused', [True, False])
def test_srm_forward_by_hand(fused):
    torch.manual_seed(0)
    srm = attention_types()['SRM'](4, fused=fused).eval()
    with torch.no_grad():
        srm.cfc.normal_()
        srm.bn.running_mean.normal_()
        srm.bn.running_var.uniform_(0.5, 2)
        srm.bn.weight.normal_()
        srm.bn.bias.normal_()
    x = torch.randn(2, 4, 3, 2)
    mean, std = _srm_style_by_hand(x)
    z = mean * srm.cfc[:, 0].double() + std * srm.cfc[:, 1].double()
    bn = srm.bn
    z = (z - bn.running_mean.double()) / (bn.running_var.double() + bn.eps).sqrt()
    gate = torch.sigmoid(z * bn.weight.double() + bn.bias.double())
    torch.testing.assert_close(srm(x).double(), x.double() * gate[:, :, None, None])


#: parameter shapes of each attention module with its default arguments on 256 channels, as
#: the sources build them (docs/architectures.md 1.2-1.8): reduction 16 everywhere (hidden 16),
#: BAM's two dilated 3x3 convs, CBAM's 7x7 spatial conv on [max, mean], SGE's 64 groups, SK's
#: two branches, SRM's (C, 2) channel-wise FC
DEFAULT_SHAPES = {
    'BAM': {'channel_fc1.weight': (16, 256), 'channel_fc1.bias': (16, ),
            'channel_bn.weight': (16, ), 'channel_bn.bias': (16, ),
            'channel_fc2.weight': (256, 16), 'channel_fc2.bias': (256, ),
            'spatial_reduce.weight': (16, 256, 1, 1), 'spatial_reduce.bias': (16, ),
            'spatial_reduce_bn.weight': (16, ), 'spatial_reduce_bn.bias': (16, ),
            'spatial_dilated.0.weight': (16, 16, 3, 3), 'spatial_dilated.0.bias': (16, ),
            'spatial_dilated.1.weight': (16, 16, 3, 3), 'spatial_dilated.1.bias': (16, ),
            'spatial_dilated_bn.0.weight': (16, ), 'spatial_dilated_bn.0.bias': (16, ),
            'spatial_dilated_bn.1.weight': (16, ), 'spatial_dilated_bn.1.bias': (16, ),
            'spatial_final.weight': (1, 16, 1, 1), 'spatial_final.bias': (1, )},
    'CBAM': {'channel_fc1.weight': (16, 256), 'channel_fc1.bias': (16, ),
             'channel_fc2.weight': (256, 16), 'channel_fc2.bias': (256, ),
             'spatial_conv.weight': (1, 2, 7, 7), 'spatial_bn.weight': (1, ),
             'spatial_bn.bias': (1, )},
    'GCBlock': {'conv_mask.weight': (1, 256, 1, 1), 'conv_mask.bias': (1, ),
                'channel_add_conv.0.weight': (16, 256, 1, 1), 'channel_add_conv.0.bias': (16, ),
                'channel_add_conv.1.weight': (16, 1, 1), 'channel_add_conv.1.bias': (16, 1, 1),
                'channel_add_conv.3.weight': (256, 16, 1, 1), 'channel_add_conv.3.bias': (256, )},
    'SEModule': {'conv1.conv.weight': (16, 256, 1, 1), 'conv1.conv.bias': (16, ),
                 'conv2.conv.weight': (256, 16, 1, 1), 'conv2.conv.bias': (256, )},
    'SGE': {'weight': (1, 64, 1, 1), 'bias': (1, 64, 1, 1)},
    'SKFusion': {'conv_fc1.weight': (16, 256, 1, 1), 'bn_fc1.weight': (16, ),
                 'bn_fc1.bias': (16, ), 'conv_fc2.weight': (512, 16, 1, 1)},
    'SRM': {'cfc': (256, 2), 'bn.weight': (256, ), 'bn.bias': (256, )},
}


def test_every_source_attention_has_default_shapes():
    assert set(DEFAULT_SHAPES) == set(SOURCE_TYPES) <= set(attention_types())


@pytest.mark.parametrize('name', sorted(DEFAULT_SHAPES))
def test_default_parameter_shapes(name):
    module = attention_types()[name](256)
    shapes = {k: tuple(v.shape) for k, v in module.named_parameters()}
    assert shapes == DEFAULT_SHAPES[name]


def test_bam_dilated_convs_keep_the_size():
    bam = attention_types()['BAM'](64)
    assert len(bam.spatial_dilated) == 2 == len(bam.spatial_dilated_bn)
    for conv in bam.spatial_dilated:
        assert conv.dilation == (4, 4) and conv.padding == (4, 4) and conv.stride == (1, 1)
    x = torch.randn(2, 64, 9, 7)
    assert bam.eval()(x).shape == x.shape


def test_cbam_spatial_conv_keeps_the_size():
    cbam = attention_types()['CBAM'](64)
    assert cbam.spatial_conv.padding == (3, 3) and cbam.spatial_bn.momentum == 0.01
    assert cbam.spatial_bn.eps == 1e-5


def test_sk_selects_among_its_default_two_branches():
    torch.manual_seed(0)
    sk = attention_types()['SKFusion'](32, ratio=4).eval()
    assert sk.num_branches == 2
    a, b = torch.randn(2, 32, 5, 4), torch.randn(2, 32, 5, 4)
    with torch.no_grad():
        sk.bn_fc1.running_mean.normal_()
        squeezed = (a + b).mean((2, 3), keepdim=True)
        bn = sk.bn_fc1
        hidden = torch.relu((sk.conv_fc1(squeezed) - bn.running_mean[:, None, None])
                            / (bn.running_var[:, None, None] + bn.eps).sqrt()
                            * bn.weight[:, None, None] + bn.bias[:, None, None])
        weights = sk.conv_fc2(hidden).view(2, 2, 32, 1, 1).softmax(1)
        expected = weights[:, 0] * a + weights[:, 1] * b
        torch.testing.assert_close(sk([a, b]), expected)


def test_sk_with_three_branches():
    """Softmax over the branches of each channel, weighted sum."""
    torch.manual_seed(0)
    sk = attention_types()['SKFusion'](16, ratio=4, num_branches=3).eval()
    branches = [torch.randn(2, 16, 4, 3) for _ in range(3)]
    with torch.no_grad():
        bn = sk.bn_fc1
        squeezed = sum(branches).mean((2, 3), keepdim=True)
        hidden = torch.relu((sk.conv_fc1(squeezed) - bn.running_mean[:, None, None])
                            / (bn.running_var[:, None, None] + bn.eps).sqrt()
                            * bn.weight[:, None, None] + bn.bias[:, None, None])
        weights = sk.conv_fc2(hidden).view(2, 3, 16, 1, 1).softmax(1)
        expected = sum(weights[:, i] * branches[i] for i in range(3))
        torch.testing.assert_close(sk(branches), expected)


@pytest.mark.parametrize('channels, hidden, rounded_to_8',
                         [(48, 3, 8), (40, 2, 8), (256, 16, 16), (72, 4, 8), (400, 25, 24)])
def test_se_squeeze_width_is_the_plain_floor(channels, hidden, rounded_to_8):
    """PytorchInsight's SE squeezes to C // 16 with no rounding to a multiple (divisor 1);
    timm's rounding to multiples of 8 is ``divisor=8``."""
    se = attention_types()['SEModule'](channels)
    assert se.conv1.conv.out_channels == hidden == se.conv2.conv.in_channels
    rounded = attention_types()['SEModule'](channels, divisor=8)
    assert rounded.conv1.conv.out_channels == rounded_to_8
