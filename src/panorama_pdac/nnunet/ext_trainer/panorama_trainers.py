"""Our stage-2 trainers under absolute names, for nnU-Net's lookup through nnUNet_extTrainer (see __init__)."""

from panorama_pdac.nnunet.multitask_trainers import Step1SegTrainer, Step2ClsTrainer, Step3JointTrainer

__all__ = ["Step1SegTrainer", "Step2ClsTrainer", "Step3JointTrainer"]
