"""The folder to point nnU-Net's `nnUNet_extTrainer` at, so that nnU-Net's own commands (nnUNetv2_predict,
nnUNetv2_predict_from_modelfolder) open our stage-2 model folders: they find the trainer a checkpoint names,
and build its network, from there.

nnU-Net imports each module of that folder as a top-level module, where our trainers' package-relative imports
fail; the one module here imports them by absolute name. The folder: `python -c "import
panorama_pdac.nnunet.ext_trainer as t; print(t.FOLDER)"`.
"""

import os

FOLDER = os.path.dirname(os.path.abspath(__file__))
