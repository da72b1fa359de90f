# ED-ResNeXt-50 32x4d (ED-Net's EDX50; 30,732,840 parameters), ED-Net recipe. The ED path
# encodes the 256*k-channel shortcut to the 128*k-channel grouped width, 32 groups.
_base_ = './ed_resnet50_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
