"""`panorama-nnunet-predict`: nnU-Net's own nnUNetv2_predict, with its arguments, knowing our trainers by name.

nnU-Net looks for the trainer a checkpoint names by importing every trainer module it ships, and only then in
nnUNet_extTrainer (ext_trainer/); one of its modules imports torchvision, which fails where torchvision was built
for another torch (PyPI's CUDA build beside a CPU torch: "operator torchvision::nms does not exist"), so that no
trainer outside nnU-Net is found there. This command answers our trainers' names itself, in its own process
only, and leaves every other name to nnU-Net's lookup; nothing of nnU-Net is changed on disk.
"""

from __future__ import annotations

from .multitask_trainers import STEP_TRAINERS

TRAINERS = {trainer.__name__: trainer for trainer in STEP_TRAINERS.values()}


def main() -> None:
    from nnunetv2.inference import predict_from_raw_data

    nnunet_lookup = predict_from_raw_data.recursive_find_trainer_class_by_name
    predict_from_raw_data.recursive_find_trainer_class_by_name = lambda name: TRAINERS.get(name) or nnunet_lookup(name)
    predict_from_raw_data.predict_entry_point()


if __name__ == "__main__":  # nnU-Net's worker processes re-import this module
    main()
