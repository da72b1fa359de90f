# ED-ResNet-50 fine-tuned on CIFAR-100: mmpretrain's CIFAR100 dataset at data/cifar100 and its
# pipeline (random 32x32 crop with 4 padding, flip), then, as ED-Net's `image-size` option, the
# images upsampled to 224, the size the ImageNet network was trained at; ED-Net's transfer recipe
# (../_base_/ed_transfer.py: lr 0.1, the pretrained backbone at lr x lrp, 100 epochs x0.1 every
# 30, 8 x 32 = 256 images).
_base_ = ['../_base_/ed_transfer.py', 'mmpretrain::_base_/datasets/cifar100_bs16.py']
model = dict(head=dict(num_classes=100))
image_size = 224
train_dataloader = dict(
    batch_size=32,
    dataset=dict(pipeline=[
        dict(type='RandomCrop', crop_size=32, padding=4),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='Resize', scale=image_size),
        dict(type='PackInputs'),
    ]))
val_dataloader = dict(
    batch_size=32,
    dataset=dict(pipeline=[dict(type='Resize', scale=image_size), dict(type='PackInputs')]))
test_dataloader = val_dataloader
