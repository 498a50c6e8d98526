"""An example custom model for a Concord job (model.arch custom): a small
convolutional classifier with GroupNorm (no BatchNorm: buffers are refused).
Print its model section with
    python3 deploy/trainer/trainer.py layout --code deploy/examples/custom/net.py --channels 1 --height 28 --width 28 --classes 2
"""
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, channels, classes):
        super().__init__()
        self.conv = nn.Conv2d(channels, 8, 3, padding=1)
        self.norm = nn.GroupNorm(2, 8)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        x = self.norm(self.conv(x)).relu()
        return self.fc(x.mean(dim=(2, 3)))


def build(channels, height, width, classes):
    return Net(channels, classes)
