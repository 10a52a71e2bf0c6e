"""nnU-Net v2 used as a library: environment, planning, training and prediction helpers.

nnU-Net stays an unmodified dependency. We call its API with explicit folders and our own splits, and we
never go through its trainer lookup by name (it imports every trainer module, one of which needs a
torchvision that matches torch; see ../shared/docs/NNUNET.md).
"""
