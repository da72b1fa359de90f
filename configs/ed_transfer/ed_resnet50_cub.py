# ED-ResNet-50 fine-tuned on CUB-200-2011 (200 classes): mmpretrain's CUB dataset at
# data/CUB_200_2011 with its 448 pipeline (resize 600, random / centre crop 448, flip), from the
# ImageNet ED-ResNet-50 with ED-Net's transfer recipe (../_base_/ed_transfer.py: lr 0.1, the
# pretrained backbone at lr x lrp, 100 epochs x0.1 every 30, 8 x 32 = 256 images).
_base_ = ['../_base_/ed_transfer.py', 'mmpretrain::_base_/datasets/cub_bs8_448.py']
model = dict(head=dict(num_classes=200))
train_dataloader = dict(batch_size=32)
