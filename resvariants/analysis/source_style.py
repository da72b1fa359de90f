"""The attention modules of the sources written the way their sources write them.

PytorchInsight's ``resnet_*.py``, Jongchan Park's CBAM / BAM, the official SRM code and GCNet's
``ContextBlock2d``, each as a function ``formula(module, x)`` that reads the parameters of the
library's module of that type and recomputes its output with the source's own sequence of ops
(``expand_as``, ``view`` chains, ``torch.std`` / ``var``, two outer products, ...). They share no
code with the library's modules, which makes them the oracle of
``tests/test_models/test_attention_source_style.py`` and, swapped into a whole network with
:func:`use_source_style`, the reference implementation of ``tools/analysis/benchmark.py
--reference`` (the trunk stays mmdet's ResNet, which computes the same ops as the sources'
torchvision-style trunks).
"""
import functools

import torch
import torch.nn.functional as F



def source_se(m, x):
    """SE as PytorchInsight: AdaptiveAvgPool -> Linear -> ReLU -> Linear -> Sigmoid ->
    ``x * y.expand_as(x)`` (our 1x1 convs hold the Linear weights)."""
    b, c, _, _ = x.size()
    y = F.adaptive_avg_pool2d(x, 1).view(b, c)
    y = F.relu(F.linear(y, m.conv1.conv.weight.flatten(1), m.conv1.conv.bias))
    y = torch.sigmoid(F.linear(y, m.conv2.conv.weight.flatten(1), m.conv2.conv.bias))
    return x * y.view(b, c, 1, 1).expand_as(x)


def source_cbam(m, x):
    """CBAM as Jongchan's code: avg_pool2d / max_pool2d with the whole map as kernel, a shared
    MLP per pool, summed; then ChannelPool = cat(max over C, mean over C) -> conv -> BN."""
    h, w = x.shape[2:]
    att = None
    for pool in (F.avg_pool2d, F.max_pool2d):
        pooled = pool(x, (h, w), stride=(h, w))
        raw = m.channel_fc2(F.relu(m.channel_fc1(pooled.view(pooled.size(0), -1))))
        att = raw if att is None else att + raw
    x = x * torch.sigmoid(att).unsqueeze(2).unsqueeze(3).expand_as(x)
    compressed = torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)),
                           dim=1)
    return x * torch.sigmoid(m.spatial_bn(m.spatial_conv(compressed)))


def source_bam(m, x):
    """BAM as Jongchan's code: both gates ``expand_as(x)``, ``att = 1 + sigmoid(c * s)``,
    ``att * x`` (BAM's ChannelGate pools with a kernel of the map size)."""
    h, w = x.shape[2:]
    y = F.avg_pool2d(x, (h, w), stride=(h, w))
    y = F.relu(m.channel_bn(m.channel_fc1(y.view(y.size(0), -1))))
    channel = m.channel_fc2(y).unsqueeze(2).unsqueeze(3).expand_as(x)
    s = F.relu(m.spatial_reduce_bn(m.spatial_reduce(x)))
    for conv, bn in zip(m.spatial_dilated, m.spatial_dilated_bn):
        s = F.relu(bn(conv(s)))
    spatial = m.spatial_final(s).expand_as(x)
    att = 1 + torch.sigmoid(channel * spatial)
    return att * x


def source_sge(m, x):
    """SpatialGroupEnhance as PytorchInsight ``resnet_sge.py``."""
    b, c, h, w = x.size()
    x = x.view(b * m.groups, -1, h, w)
    xn = x * F.adaptive_avg_pool2d(x, 1)
    xn = xn.sum(dim=1, keepdim=True)
    t = xn.view(b * m.groups, -1)
    t = t - t.mean(dim=1, keepdim=True)
    std = t.std(dim=1, keepdim=True) + 1e-5
    t = t / std
    t = t.view(b, m.groups, h, w)
    t = t * m.weight + m.bias
    t = t.view(b * m.groups, 1, h, w)
    x = x * torch.sigmoid(t)
    return x.view(b, c, h, w)


def source_srm(m, x):
    """SRM as the official code: ``_style_pooling`` (mean, sqrt(var + eps)) then
    ``_style_integration`` (``t * cfc`` summed, BN, sigmoid)."""
    n, c, _, _ = x.size()
    channel_mean = x.view(n, c, -1).mean(dim=2, keepdim=True)
    channel_var = x.view(n, c, -1).var(dim=2, keepdim=True) + 1e-5
    t = torch.cat((channel_mean, channel_var.sqrt()), dim=2)
    z = torch.sum(t * m.cfc[None, :, :], dim=2)[:, :, None, None]
    return x * torch.sigmoid(m.bn(z))


def source_sk(m, branches):
    """SK fusion as PytorchInsight ``resnet_sk.py`` (after its two 3x3 branches)."""
    d1, d2 = branches
    planes = d1.size(1)
    d = F.adaptive_avg_pool2d(d1, 1) + F.adaptive_avg_pool2d(d2, 1)
    d = F.relu(m.bn_fc1(m.conv_fc1(d)))
    d = m.conv_fc2(d)
    d = torch.unsqueeze(d, 1).view(-1, 2, planes, 1, 1)
    d = F.softmax(d, 1)
    return d1 * d[:, 0, :, :, :].squeeze(1) + d2 * d[:, 1, :, :, :].squeeze(1)


def source_gc(m, x):
    """GCNet ``ContextBlock2d`` (att pooling, channel_add fusion) as its source writes it."""
    batch, channel, height, width = x.size()
    input_x = x.view(batch, channel, height * width).unsqueeze(1)
    context_mask = m.conv_mask(x).view(batch, 1, height * width)
    context_mask = F.softmax(context_mask, dim=2).unsqueeze(3)
    context = torch.matmul(input_x, context_mask).view(batch, channel, 1, 1)
    return x + m.channel_add_conv(context)


#: type name -> the source-style formula of that module
SOURCE_STYLE = {'SEModule': source_se, 'SKFusion': source_sk, 'CBAM': source_cbam,
                'BAM': source_bam, 'GCBlock': source_gc, 'SGE': source_sge, 'SRM': source_srm}


def use_source_style(model):
    """Make every attention module of ``model`` that has a source-style formula compute it
    (its ``forward`` replaced on the instance; parameters, buffers and keys unchanged);
    returns how many modules were switched."""
    count = 0
    for module in model.modules():
        formula = SOURCE_STYLE.get(type(module).__name__)
        if formula is not None:
            module.forward = functools.partial(formula, module)
            count += 1
    return count
