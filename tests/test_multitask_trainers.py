"""The three stage-2 steps through `train_fold` on a tiny nnU-Net dataset (16^3 cases, labels 0-6), their
options, and multi-task inference from the trained folds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from panorama_pdac.errors import ConfigError, DataError
from panorama_pdac.io import read_json, write_image, write_json
from panorama_pdac.losses import TverskyLoss, cell_lesion_loss
from panorama_pdac.nnunet.env import configure_nnunet_env
from panorama_pdac.nnunet.inference import load_predictor
from panorama_pdac.nnunet.multitask_inference import (
    WindowAggregation,
    head_window_logits,
    pdac_probability,
    predict_case,
)
from panorama_pdac.nnunet.multitask_trainers import (
    AUROC_KEY,
    CLS_LOSS_KEY,
    HEAD_VALIDATION,
    MultiTaskOptions,
    PancreasCentredBoxes,
    Step1SegTrainer,
    Step2ClsTrainer,
    Step3JointTrainer,
    patch_auroc,
    training_loader,
)
from panorama_pdac.nnunet.planning import plan_and_preprocess
from panorama_pdac.nnunet.seeding import Seeding
from panorama_pdac.nnunet.training import FINAL, Schedule, build_trainer, train_fold

DATASET_ID = 598
DATASET = f"Dataset{DATASET_ID}_MultiTaskTest"
LABELS = {"background": 0, "lesion": 1, "veins": 2, "arteries": 3, "pancreas": 4, "duct": 5, "bile_duct": 6}
TINY = {"patch_size": [16, 16, 16], "batch_size": 2, "base_features": 4, "max_features": 16, "n_conv_per_stage": 1}
SCHEDULE = Schedule(num_epochs=1, iterations_per_epoch=2, val_iterations_per_epoch=1)
CPU = torch.device("cpu")
SEEDING = Seeding(seed=0)


def _write_case(folder, case_id: str, rng, pdac: bool, shape=(16, 16, 16)) -> str:
    label = (rng.integers(2, 7, shape) * (rng.random(shape) < 0.4)).astype(np.uint8)
    if pdac:
        label[5:10, 5:10, 5:10] = 1
    image = sitk.GetImageFromArray((100 + 30 * label + rng.normal(0, 10, shape)).astype(np.int16))
    image.SetSpacing((1.0, 1.0, 1.0))
    seg = sitk.GetImageFromArray(label)
    seg.CopyInformation(image)
    write_image(image, folder / "imagesTr" / f"{case_id}_0000.nii.gz")
    write_image(seg, folder / "labelsTr" / f"{case_id}.nii.gz")
    return str(folder / "imagesTr" / f"{case_id}_0000.nii.gz")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multitask")
    root = tmp / "nnunet"
    configure_nnunet_env(root, threads=1)
    raw = root / "raw" / DATASET
    rng = np.random.default_rng(0)
    pdac = {f"10000{i}_00001": int(i % 2 == 0) for i in range(6)}
    for case_id, label in pdac.items():
        _write_case(raw, case_id, rng, bool(label))
    write_json({"channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": len(pdac), "file_ending": ".nii.gz"},
               raw / "dataset.json")
    ids = list(pdac)
    plans = plan_and_preprocess(DATASET_ID, "ExperimentPlanner", "3d_fullres", TINY,
                                [{"train": ids[:4], "val": ids[4:]}], num_processes=1)
    conf = read_json(plans)
    conf["configurations"]["3d_fullres"]["classification_head"] = {"width": 16}
    write_json(conf, plans)
    write_json(pdac, tmp / "case_labels.json")
    test_image = _write_case(tmp / "test", "200000_00001", rng, True, shape=(16, 24, 24))
    return {"tmp": tmp, "plans": plans, "dataset_json": plans.parent / "dataset.json",
            "labels": tmp / "case_labels.json", "ids": ids, "test_image": test_image}


def _options(data, **kwargs) -> MultiTaskOptions:
    return MultiTaskOptions.from_config({"case_labels": data["labels"], **kwargs})


def _trainer(data, cls, name: str, **options):
    trainer = build_trainer(cls, data["plans"], data["dataset_json"], "3d_fullres", 0, data["tmp"] / name, CPU)
    _options(data, **options).apply(trainer)
    trainer.initialize()
    return trainer


def _weights(checkpoint) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["network_weights"]


def _changed(before: dict, after: dict, prefix: str) -> bool:
    keys = [k for k in before if k.startswith(prefix) and before[k].is_floating_point()]
    assert keys
    return any(not torch.equal(before[k], after[k]) for k in keys)


def _train_steps(data, fold, seeding: Seeding) -> list:
    """Steps 1-3 of fold 0 into `fold`/step{1,2,3}; their final checkpoints."""
    args = (data["plans"], data["dataset_json"], "3d_fullres", 0)
    step1 = train_fold(Step1SegTrainer, *args, fold / "step1", SCHEDULE, CPU, seeding, options=_options(data))
    step2 = train_fold(Step2ClsTrainer, *args, fold / "step2", SCHEDULE, CPU, seeding, init_weights=step1,
                       options=_options(data, optimizer="adamw"))
    step3 = train_fold(Step3JointTrainer, *args, fold / "step3", SCHEDULE, CPU, seeding, init_weights=step2,
                       options=_options(data, seg_loss="tversky", cls_weight=0.5, lesion_oversample=0.5))
    return [step1, step2, step3]


@pytest.fixture(scope="module")
def trained(data):
    configure_nnunet_env(data["tmp"] / "nnunet", threads=1)
    fold = data["tmp"] / "model" / "fold_0"
    return {"fold": fold, "steps": _train_steps(data, fold, SEEDING)}


def _fresh_network(data):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = PlansManager(str(data["plans"]))
    return Step3JointTrainer.build_network_architecture(plans, plans.get_configuration("3d_fullres"), 1,
                                                        len(LABELS), True)


def test_each_step_trains_only_its_parts(data, trained):
    torch.manual_seed(0)  # the same draw as step 1's initialisation
    initial = _fresh_network(data).state_dict()
    step1, step2, step3 = (_weights(c) for c in trained["steps"])
    assert not _changed(initial, step1, "head.") and _changed(initial, step1, "encoder.")
    assert not _changed(step1, step2, "encoder.") and not _changed(step1, step2, "decoder.")
    assert _changed(step1, step2, "head.")
    assert _changed(step2, step3, "encoder.") and _changed(step2, step3, "head.")
    checkpoint = torch.load(trained["steps"][2], weights_only=False)
    assert checkpoint["trainer_name"] == "Step3JointTrainer"
    assert len(checkpoint["logging"][AUROC_KEY]) == 1  # one AUROC (or nan) per epoch, beside the pseudo Dice
    assert "Patch-level PDAC AUROC" in (trained["fold"] / "step3" / "training_log.txt").read_text()


def test_steps_training_the_head_validate_it_on_whole_cases(data, trained):
    step1 = read_json(trained["fold"] / "step1" / HEAD_VALIDATION)  # the untrained head, for reference
    assert step1["train_cls_loss"] == [None] * SCHEDULE.num_epochs  # step 1 has no classification loss
    for step in ("step2", "step3"):
        result = read_json(trained["fold"] / step / HEAD_VALIDATION)
        val_ids = data["ids"][4:]
        assert sorted(result["cases"]) == sorted(val_ids)
        labels = read_json(data["labels"])
        assert all(result["cases"][k]["pdac"] == labels[k] for k in val_ids)
        assert all(0 < c["pdac_probability"] < 1 for c in result["cases"].values())
        y = np.array([labels[k] for k in val_ids])
        p = np.array([result["cases"][k]["pdac_probability"] for k in val_ids])
        assert result["case_auroc"] == pytest.approx(patch_auroc(y, p))
        assert set(result["case_auroc_by_aggregation"]) == {"mean", "max", "top_k"}
        assert len(result["train_cls_loss"]) == SCHEDULE.num_epochs and result["train_cls_loss"][0] > 0
        assert "Case-level PDAC AUROC" in (trained["fold"] / step / "training_log.txt").read_text()
    logged = torch.load(trained["steps"][1], weights_only=False)["logging"][CLS_LOSS_KEY]
    assert logged == read_json(trained["fold"] / "step2" / HEAD_VALIDATION)["train_cls_loss"]


def test_a_step_trains_with_the_batch_size_of_its_schedule(data, trained, tmp_path, monkeypatch):
    batches = []
    train_step = Step2ClsTrainer.train_step

    def recording(self, batch):
        batches.append(sorted(self.case_targets(batch["keys"]).tolist()))
        return train_step(self, batch)

    monkeypatch.setattr(Step2ClsTrainer, "train_step", recording)
    train_fold(Step2ClsTrainer, data["plans"], data["dataset_json"], "3d_fullres", 0, tmp_path / "step2",
               replace(SCHEDULE, batch_size=5), CPU, SEEDING, init_weights=trained["steps"][0],
               options=_options(data, balanced_batches=True))
    assert read_json(data["plans"])["configurations"]["3d_fullres"]["batch_size"] == 2
    assert len(batches) == SCHEDULE.iterations_per_epoch
    assert all(len(b) == 5 and 0 in b and 1 in b for b in batches)  # balanced batches at that size too
    assert "Batch size 5 (schedule; the plans say 2)" in (tmp_path / "step2" / "training_log.txt").read_text()


def test_step_checkpoint_reloads_strictly(data, trained):
    weights = _weights(trained["steps"][1])
    _fresh_network(data).load_state_dict(weights, strict=True)
    weights.pop(next(k for k in weights if k.startswith("head.")))
    with pytest.raises(RuntimeError, match="Missing key"):
        _fresh_network(data).load_state_dict(weights, strict=True)


def test_class_weights_reach_the_classification_loss(data):
    keys = [k for k in data["ids"] if read_json(data["labels"])[k] == 0][:1] + \
           [k for k in data["ids"] if read_json(data["labels"])[k] == 1][:1]
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0]])  # both patches called non-PDAC: right, then wrong
    losses = {}
    for weights in ([1, 3], [1, 1]):
        trainer = _trainer(data, Step3JointTrainer, f"weights_{weights[1]}", class_weights=weights)
        labels = trainer.case_targets(keys)
        assert labels.tolist() == [0, 1]
        losses[weights[1]] = trainer.cls_loss(logits, labels).item()
    right, wrong = np.log1p(np.exp(-2.0)), np.log1p(np.exp(2.0))
    assert losses[1] == pytest.approx((right + wrong) / 2)
    assert losses[3] == pytest.approx((right + 3 * wrong) / 4)


def test_segmentation_loss_options(data):
    default = _trainer(data, Step1SegTrainer, "dice_ce")
    tversky = _trainer(data, Step1SegTrainer, "tversky", seg_loss="tversky", tversky_alpha=0.2, tversky_beta=0.8,
                       ce_weight=0.5)
    assert type(default.loss.loss.dc).__name__ == "MemoryEfficientSoftDiceLoss" and default.loss.loss.weight_ce == 1
    dc = tversky.loss.loss.dc
    assert isinstance(dc, TverskyLoss) and (dc.alpha, dc.beta) == (0.2, 0.8) and tversky.loss.loss.weight_ce == 0.5
    assert list(tversky.loss.weight_factors) == list(default.loss.weight_factors)  # nnU-Net's deep supervision
    # the frozen head stays out of the optimiser
    optimised = {id(p) for group in default.optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in optimised for p in default.network.head.parameters())
    assert all(id(p) in optimised for p in default.network.encoder.parameters())


def test_cell_lesion_weight_adds_the_per_cell_lesion_loss(data, tmp_path):
    plans = read_json(data["plans"])
    plans["configurations"]["3d_fullres"]["classification_head"] = {"width": 16, "pooling": "cell"}
    write_json(plans, tmp_path / "plans.json")
    trainer = build_trainer(Step2ClsTrainer, tmp_path / "plans.json", data["dataset_json"], "3d_fullres", 0,
                            tmp_path / "cell", CPU)
    _options(data, cell_lesion_weight=2.0).apply(trainer)
    trainer.initialize()
    torch.manual_seed(0)
    x = torch.randn(2, 1, 16, 16, 16)
    target = torch.zeros(2, 1, 16, 16, 16)
    target[0, :, 2:6, 2:6, 2:6] = 1  # lesion in the first patch
    labels = torch.tensor([1, 0])
    with torch.no_grad():
        with_cells = trainer.multitask_loss(x, [target], labels)
        trainer.options = replace(trainer.options, cell_lesion_weight=0.0)
        without = trainer.multitask_loss(x, [target], labels)
        _, (_, margins) = trainer.network.forward_both(x, decode=False, cells=True)
    assert with_cells.item() == pytest.approx(without.item() + 2.0 * cell_lesion_loss(margins, target).item())
    # the option needs a head that scores cells
    with pytest.raises(ConfigError, match="cell_lesion_weight needs stage2.head.pooling: cell"):
        _trainer(data, Step2ClsTrainer, "avg_cells", cell_lesion_weight=1.0)


@pytest.mark.parametrize("trainer_class", [Step2ClsTrainer, Step3JointTrainer])
def test_balanced_batches_always_hold_both_classes(data, trainer_class):
    trainer = _trainer(data, trainer_class, "balanced", balanced_batches=True)
    train, _ = trainer.get_dataloaders()
    for _ in range(8):
        assert sorted(trainer.case_targets(next(train)["keys"]).tolist()) == [0, 1]


def _patch_centres(get_bbox, locations, n: int) -> np.ndarray:
    boxes = [get_bbox(np.array([64, 64, 64]), False, locations) for _ in range(n)]
    return np.array([[(lo + hi) // 2 for lo, hi in zip(lbs, ubs)] for lbs, ubs in boxes])


def test_lesion_oversampling_centres_patches_on_the_lesion(data):
    trainer = _trainer(data, Step1SegTrainer, "lesion", lesion_oversample=1.0)
    train, _ = trainer.get_dataloaders()
    get_bbox = training_loader(train).get_bbox
    assert isinstance(get_bbox, PancreasCentredBoxes)
    # A small lesion in a corner of a large volume, far from the other foreground: (channel, z, y, x) rows.
    lesion = np.array([[0, 56, 56, 56]])
    locations = {1: lesion, 4: np.array([[0, 8, 8, 8]])}

    def lesion_patches(bbox_fn) -> int:
        boxes = [bbox_fn(np.array([64, 64, 64]), False, locations) for _ in range(40)]
        return sum(all(lo <= v < hi for lo, hi, v in zip(lbs, ubs, lesion[0, 1:])) for lbs, ubs in boxes)

    assert lesion_patches(get_bbox) == 40
    assert lesion_patches(get_bbox.get_bbox) < 20  # nnU-Net's own choice rarely finds it
    with pytest.raises(ConfigError, match="probability"):
        MultiTaskOptions(lesion_oversample=1.5)


def test_patches_of_both_classes_are_centred_on_the_pancreas_equally_often(data):
    # Where a patch lies must not tell its case's label: a PDAC case's patch centred on its lesion with
    # probability p, a non-PDAC case's on its parenchyma with the same p, the rest by nnU-Net's own choice.
    trainer = _trainer(data, Step1SegTrainer, "centres", lesion_oversample=0.5)
    train, _ = trainer.get_dataloaders()
    get_bbox = training_loader(train).get_bbox
    centre = np.array([[0, 32, 32, 32]])  # the lesion of one case, the parenchyma of the other, same place
    other = np.array([[0, 5, 5, 5]])  # another structure (veins) far away
    np.random.seed(0)
    pdac = _patch_centres(get_bbox, {1: centre, 2: other, 4: np.zeros((0, 4), int)}, 400)
    non_pdac = _patch_centres(get_bbox, {1: np.zeros((0, 4), int), 2: other, 4: centre}, 400)
    on_pancreas = [float(np.mean(np.all(c == centre[0, 1:], axis=1))) for c in (pdac, non_pdac)]
    assert all(0.4 < f < 0.6 for f in on_pancreas), on_pancreas  # p = 0.5 each, binomial sd 0.025
    # the patch centres of the two classes follow one distribution (mean distance to the pancreas)
    distance = [float(np.mean(np.linalg.norm(c - centre[0, 1:], axis=1))) for c in (pdac, non_pdac)]
    assert abs(distance[0] - distance[1]) < 0.15 * max(distance), distance


def test_window_aggregation_rules():
    # margins (PDAC minus non-PDAC logit) of four windows: -2, 0, 1, 3
    windows = [torch.tensor([[1.0, -1.0], [0.0, 0.0]]), torch.tensor([[0.0, 1.0], [-1.0, 2.0]])]
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    mean_of_logits = torch.softmax(torch.cat(windows).mean(0), 0)[1].item()
    assert WindowAggregation("mean")(windows) == pytest.approx(mean_of_logits)  # the published rule
    assert WindowAggregation("mean")(windows) == pytest.approx(sigmoid(0.5))
    assert WindowAggregation("max")(windows) == pytest.approx(sigmoid(3.0))
    assert WindowAggregation("top_k", top_k=2)(windows) == pytest.approx(sigmoid(2.0))
    assert WindowAggregation("top_k", top_k=10)(windows) == pytest.approx(sigmoid(0.5))  # k beyond the windows
    assert WindowAggregation.from_head_settings({}) == WindowAggregation("mean")
    assert WindowAggregation.from_head_settings({"aggregation": "top_k", "top_k": 5}) == WindowAggregation("top_k", 5)
    with pytest.raises(ConfigError, match="aggregation"):
        WindowAggregation("median")
    with pytest.raises(ConfigError, match="top_k"):
        WindowAggregation("top_k", top_k=0)
    # folds average probabilities, each fold aggregated by the rule
    assert pdac_probability([windows, [torch.tensor([[0.0, 0.0]])]], WindowAggregation("max")) == pytest.approx(
        (sigmoid(3.0) + 0.5) / 2)


def test_options_and_case_labels_are_checked(data, tmp_path):
    with pytest.raises(ConfigError, match="unknown"):
        MultiTaskOptions.from_config({"seg_los": "tversky"})
    with pytest.raises(ConfigError, match="seg_loss"):
        MultiTaskOptions(seg_loss="focal")
    with pytest.raises(ConfigError, match="case_labels"):
        build_trainer(Step3JointTrainer, data["plans"], data["dataset_json"], "3d_fullres", 0, tmp_path / "a",
                      CPU).initialize()
    write_json({data["ids"][0]: 2}, tmp_path / "bad.json")
    with pytest.raises(DataError, match="0 \\(non-PDAC\\) or 1"):
        _trainer(data, Step3JointTrainer, "bad", case_labels=tmp_path / "bad.json")
    write_json({data["ids"][0]: 1}, tmp_path / "partial.json")
    trainer = _trainer(data, Step3JointTrainer, "partial", case_labels=tmp_path / "partial.json")
    with pytest.raises(DataError, match=data["ids"][1]):
        trainer.case_targets(data["ids"][:2])


def test_train_step_mirrors_the_installed_nnunet():
    import hashlib
    import inspect

    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    digest = hashlib.sha256(inspect.getsource(nnUNetTrainer.train_step).encode()).hexdigest()
    assert digest == Step3JointTrainer.MIRRORED_TRAIN_STEP_SHA256, (
        "nnU-Net's nnUNetTrainer.train_step changed: bring MultiTaskTrainer.train_step in line with it "
        "(autocast, grad scaler, clipping), then record the new digest in MIRRORED_TRAIN_STEP_SHA256")


def test_patch_auroc():
    assert patch_auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert patch_auroc(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert patch_auroc(np.array([1, 1]), np.array([0.2, 0.3])) is None


def test_pdac_probability_averages_logits_within_and_probabilities_across_folds():
    fold_a = [torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 2.0]])]  # mean logits (0, 1)
    fold_b = [torch.tensor([[1.0, 0.0]])]
    expected = (1 / (1 + np.exp(-1.0)) + 1 / (1 + np.exp(1.0))) / 2
    assert pdac_probability([fold_a, fold_b]) == pytest.approx(expected)


@pytest.mark.parametrize("mirroring, per_window", [(False, 1), (True, 8)])
def test_inference_collects_logits_of_every_window_and_mirror(trained, mirroring, per_window):
    step3 = trained["fold"] / "step3"
    predictor = load_predictor(step3, [step3 / FINAL], CPU, mirroring=mirroring, trainer_class=Step3JointTrainer)
    with predictor.network.collecting() as collected:
        predictor.predict_sliding_window_return_logits(torch.randn(1, 16, 24, 24))
    assert len(collected) == 4 * per_window  # 1 x 2 x 2 windows of 16^3 (step 0.5)
    assert all(c.shape == (1, 2) for c in collected)


@pytest.mark.parametrize("shape", [(1, 16, 24, 24), (1, 10, 30, 17)])  # the second needs padding
def test_head_validation_sees_the_windows_inference_sees(trained, shape):
    step3 = trained["fold"] / "step3"
    predictor = load_predictor(step3, [step3 / FINAL], CPU, mirroring=False, trainer_class=Step3JointTrainer)
    image = torch.randn(*shape)
    with predictor.network.collecting() as collected:
        predictor.predict_sliding_window_return_logits(image)
    windows = head_window_logits(predictor.network, image, predictor.configuration_manager.patch_size, batch_size=3)
    assert torch.allclose(windows, torch.cat(collected), atol=1e-5)


def test_predict_case_returns_lesion_map_in_input_grid_and_fold_mean(data, trained):
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    step2, step3 = trained["steps"][1], trained["steps"][2]
    model = trained["fold"] / "step3"

    def predict(checkpoints, **case):
        predictor = load_predictor(model, checkpoints, CPU, mirroring=False, trainer_class=Step3JointTrainer)
        return predict_case(predictor, **case)

    lesion, probability = predict([step2, step3], image_files=[data["test_image"]])
    assert lesion.shape == (16, 24, 24) and lesion.dtype == np.float32
    assert 0 <= lesion.min() and lesion.max() <= 1
    # folds are averaged as probabilities
    expected = (predict([step2], image_files=[data["test_image"]])[1] +
                predict([step3], image_files=[data["test_image"]])[1]) / 2
    assert probability == pytest.approx(expected)
    image, properties = SimpleITKIO().read_images([data["test_image"]])
    from_array = predict([step2, step3], image=image, properties=properties)
    assert np.allclose(from_array[0], lesion) and from_array[1] == pytest.approx(probability)


def _cv_output(data, step3):
    predictor = load_predictor(step3.parent, [step3], CPU, mirroring=False, trainer_class=Step3JointTrainer)
    return predict_case(predictor, image_files=[data["test_image"]])


@pytest.mark.parametrize("workers", [0, 2])
def test_seeded_steps_give_identical_weights_and_cv_outputs(data, trained, tmp_path, monkeypatch, workers):
    from checkpoints import differing_tensors

    configure_nnunet_env(data["tmp"] / "nnunet", threads=1)
    monkeypatch.setenv("nnUNet_n_proc_DA", str(workers))  # augmentation_workers, for this test only
    a = trained["steps"] if workers == 0 else _train_steps(data, tmp_path / "a", SEEDING)
    b = _train_steps(data, tmp_path / "b", SEEDING)
    for step_a, step_b in zip(a, b):
        assert differing_tensors(step_a, step_b) == []
    (lesion_a, probability_a), (lesion_b, probability_b) = _cv_output(data, a[2]), _cv_output(data, b[2])
    assert np.array_equal(lesion_a, lesion_b) and probability_a == probability_b
    other = _train_steps(data, tmp_path / "other_seed", Seeding(SEEDING.seed + 1))
    assert all(differing_tensors(x, y) for x, y in zip(a, other))  # the seed decides each step
