"""The config as a contract: every key the user writes is one the schema names, checked when Snakemake starts.

Unit tests of panorama_pdac.config_check, then the same mistakes through `snakemake -n` against the real
Snakefile: it stops before any job, the message names the key, the nearest valid name and the file, and no
traceback reaches the terminal."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from panorama_pdac.config_check import (
    LABELS_REPOSITORY,
    check_config,
    load_schema,
    merged_config_files,
    painted_labels_problems,
    predict_input_problems,
    schema_problems,
)
from panorama_pdac.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
MAIN = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
OVERLAY = "my_config.yaml"

# What the user wrote (an overlay passed with --configfile) -> what the message must say.
MISTAKES = {
    "synthetic_enable": ({"synthetic": {"enable": False}},
                         "synthetic.enable: unknown key; did you mean synthetic.enabled?"),
    "data_on_invalide": ({"data": {"on_invalide": "skip"}},
                         "data.on_invalide: unknown key; did you mean data.on_invalid?"),
    # Before: an error about the default /data/panorama/images/*, which the user never wrote.
    "data_image": ({"data": {"image": ["/data/my_scans/batch_*"]}},
                   "data.image: unknown key; did you mean data.images?"),
    # Before: accepted by the schema, failed when train_stage2 started, after stage 1 had trained.
    "stage2_options": ({"stage2": {"options": {"seg_los": "tversky"}}},
                       "stage2.options.seg_los: unknown key; did you mean stage2.options.seg_loss?"),
    "variant_options": ({"stage2": {"variants": {"tversky": {"options": {"tversky_alfa": 0.2}}}}},
                        "stage2.variants.tversky.options.tversky_alfa: unknown key; "
                        "did you mean stage2.variants.tversky.options.tversky_alpha?"),
    "step_options": ({"stage2": {"steps": {"step2": {"options": {"cls_wieght": 2.0}}}}},
                     "stage2.steps.step2.options.cls_wieght: unknown key; "
                     "did you mean stage2.steps.step2.options.cls_weight?"),
    # The executor ignores a resource it does not know: the job would run without its GPU or memory.
    "resources_gpus": ({"resources": {"train": {"gpus": 1}}},
                       "resources.train.gpus: unknown key; did you mean resources.train.gpu?"),
    "resources_mem": ({"resources": {"predict": {"mem": 32000}}},
                      "resources.predict.mem: unknown key; did you mean resources.predict.mem_mb?"),
    "top_level": ({"evalution": {"n_bootstrap": 10}}, "evalution: unknown key; did you mean evaluation?"),
    "dotted_key": ({"stage1.seed": 3}, "stage1.seed: unknown key; nested keys are written as nested mappings"),
    # The workflow passes the case table's labels itself; a value here would be overwritten without a word.
    "case_labels": ({"stage2": {"options": {"case_labels": "labels.json"}}},
                    "stage2.options.case_labels: unknown key"),
    "wrong_type": ({"stage1": {"seed": "three"}}, "stage1.seed: 'three' is not of type 'integer'"),
    "wrong_value": ({"stage2": {"options": {"optimizer": "adam"}}},
                    "stage2.options.optimizer: 'adam' is not one of ['sgd', 'adamw']; did you mean adamw?"),
    # Before: any string passed, and a typo failed in postprocess_cv, after every model had trained.
    "threshold": ({"evaluation": {"postprocess": {"threshold": "dynamic_fast"}}},
                  "evaluation.postprocess.threshold: 'dynamic_fast' is not one of"),
}


def _merged(*parts: dict) -> dict:
    config = {}
    for part in parts:
        update_config(config, copy.deepcopy(part))
    return config


def _problem(overlay: dict) -> str:
    sources = [("config/config.yaml", MAIN), (OVERLAY, overlay)]
    with pytest.raises(ConfigError) as raised:
        check_config(_merged(MAIN, overlay), SCHEMA, sources)
    return str(raised.value)


def test_the_shipped_config_passes():
    check_config(_merged(MAIN), SCHEMA, [("config/config.yaml", MAIN)])


def test_config_files_merge_as_snakemake_merges_configfiles(tmp_path):
    """Benchmarks and tests read config/config.yaml plus overlays as `--configfile` would give them to a run:
    nested keys merged, the later file winning, an empty file changing nothing."""
    files = [tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "empty.yaml"]
    files[0].write_text("stage2: {head: {width: 32, pooling: cell}, seed: 2}\nfolds: {n_folds: 3}\n")
    files[1].write_text("stage2: {head: {pooling: max}}\n")
    files[2].write_text("")
    assert merged_config_files(files) == {"stage2": {"head": {"width": 32, "pooling": "max"}, "seed": 2},
                                          "folds": {"n_folds": 3}}
    real_anatomy = merged_config_files([REPO / "config" / "config.yaml", REPO / "config" / "real_anatomy.yaml"])
    assert real_anatomy["stage2"]["head"] == {**MAIN["stage2"]["head"], "width": 256, "pooling": "max"}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_a_mistake_names_the_key_and_the_file(case):
    overlay, expected = MISTAKES[case]
    message = _problem(overlay)
    assert expected in message
    assert f"(set in {OVERLAY})" in message
    assert "/data/panorama/images" not in message  # only what the user wrote


def test_every_problem_is_listed_at_once():
    message = _problem({"synthetic": {"enable": False}, "data": {"on_invalide": "skip"}})
    assert "2 problems" in message and "synthetic.enable" in message and "data.on_invalide" in message


def test_a_key_from_config_is_named_as_such():
    sources = [("config/config.yaml", MAIN), ("--config", {"predict_inptu": "/x"})]
    with pytest.raises(ConfigError, match=r"predict_inptu: unknown key; did you mean predict_input\? "
                                          r"\(set in --config\)"):
        check_config(_merged(MAIN, {"predict_inptu": "/x"}), SCHEMA, sources)


def test_an_unknown_key_without_a_near_name_lists_the_valid_ones():
    message = _problem({"threads": {"gpu_count": 2}})
    assert "threads.gpu_count: unknown key; valid keys here: per_case, train, predict" in message


def test_a_missing_required_key_is_named():
    config = _merged(MAIN)
    del config["synthetic"]["mode"]
    assert schema_problems(config, SCHEMA) == ["synthetic.mode: required key missing"]


def test_schema_defaults_are_filled_in():
    config = _merged(MAIN)
    del config["predict"], config["predict_input"]
    check_config(config, SCHEMA)
    assert config["predict"] == {"variant": "ce", "mirroring": True} and config["predict_input"] == ""


def test_every_object_of_the_schema_refuses_unknown_keys():
    def objects(node, path):
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                yield path, node
            for key, value in node.items():
                yield from objects(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from objects(value, f"{path}/{i}")

    found = list(objects(SCHEMA, ""))
    assert len(found) > 15
    # stage2.variants maps any variant name to a described object; every other object closes its keys.
    open_ = [path for path, node in found if node.get("additionalProperties") is not False]
    assert open_ == ["/properties/stage2/properties/variants"]
    variant = SCHEMA["properties"]["stage2"]["properties"]["variants"]["additionalProperties"]
    assert variant["additionalProperties"] is False


def test_schema_trainer_options_are_multitask_options():
    # case_labels is the workflow's: train_stage2 passes the stage-2 case table's labels to every job.
    from panorama_pdac.nnunet.multitask_trainers import OPTIMIZERS, SEG_LOSSES, MultiTaskOptions

    described = SCHEMA["definitions"]["trainer_options"]["properties"]
    assert set(described) == {f.name for f in dataclasses.fields(MultiTaskOptions)} - {"case_labels"}
    assert all(spec.get("description") and "type" in spec for spec in described.values())
    assert described["seg_loss"]["enum"] == list(SEG_LOSSES)
    assert described["optimizer"]["enum"] == list(OPTIMIZERS)
    stage2 = SCHEMA["properties"]["stage2"]["properties"]
    refs = [stage2["options"], SCHEMA["definitions"]["step"]["properties"]["options"],
            stage2["variants"]["additionalProperties"]["properties"]["options"]]
    assert all(ref == {"$ref": "#/definitions/trainer_options"} for ref in refs)


# Painted mode on a clone of this project without the labels repository beside it.

def _painted(folder) -> dict:
    return _merged(MAIN, {"synthetic": {"enabled": True, "mode": "painted", "painted_labels": str(folder)}})


def _labels_clone(root: Path) -> Path:
    for name in ("manual_labels", "automatic_labels"):
        (root / name).mkdir(parents=True)
    (root / "clinical_information.xlsx").write_bytes(b"")
    return root


def test_painted_labels_that_are_not_there_are_named(tmp_path):
    folder = tmp_path / "panorama_labels"
    sources = [("config/real_anatomy.yaml", {"synthetic": {"painted_labels": str(folder)}})]
    with pytest.raises(ConfigError) as raised:
        check_config(_painted(folder), SCHEMA, sources)
    message = str(raised.value)
    assert f"synthetic.painted_labels: '{folder}' (set in config/real_anatomy.yaml) is not a folder" in message
    assert f"git clone {LABELS_REPOSITORY}" in message
    [empty] = painted_labels_problems(_painted(""))
    assert empty.startswith("synthetic.painted_labels: is empty.")


def test_painted_labels_without_their_parts_are_named(tmp_path):
    folder = _labels_clone(tmp_path / "panorama_labels")
    (folder / "automatic_labels").rmdir()
    (folder / "clinical_information.xlsx").unlink()
    [problem] = painted_labels_problems(_painted(folder))
    assert "holds no automatic_labels, clinical_information.xlsx" in problem and LABELS_REPOSITORY in problem


def test_painted_labels_are_checked_only_in_painted_mode(tmp_path):
    assert painted_labels_problems(_painted(_labels_clone(tmp_path / "panorama_labels"))) == []
    generated = _painted(tmp_path / "nowhere")
    generated["synthetic"]["mode"] = "generated"
    assert painted_labels_problems(generated) == []
    check_config(generated, SCHEMA)


# predict_input, the documented --config override of `snakemake predict`.

def test_predict_input_is_checked_once_set(tmp_path):
    config = _merged(MAIN)
    assert predict_input_problems(config) == []  # unset: only `snakemake predict` needs it
    sources = [("config/config.yaml", MAIN), ("--config", {"predict_input": str(tmp_path / "scans")})]
    config["predict_input"] = str(tmp_path / "scans")
    assert predict_input_problems(config, sources) == [
        f"predict_input: '{tmp_path / 'scans'}' (set in --config) is not a folder (of CT scans to predict)"]
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / ".DS_Store").write_text("")
    assert predict_input_problems(config) == [f"predict_input: '{tmp_path / 'scans'}' holds no files"]
    (tmp_path / "scans" / "case_0000.nii.gz").write_bytes(b"")
    assert predict_input_problems(config) == []
    config["predict"]["variant"] = "focal"
    assert predict_input_problems(config) == ["predict.variant: 'focal' is not one of stage2.variants (ce, tversky)"]


# Through Snakemake: any invocation, a dry run included, stops before any job.

def _dry_run(cwd: Path, *args: str) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", *args],
                         cwd=cwd, capture_output=True, text=True, timeout=300)
    return out.returncode, out.stdout + out.stderr


@pytest.mark.parametrize("case", ["synthetic_enable", "data_on_invalide", "data_image", "stage2_options",
                                  "variant_options", "resources_gpus"])
def test_snakemake_stops_at_start_up(tmp_path, case):
    overlay, expected = MISTAKES[case]
    path = tmp_path / OVERLAY
    path.write_text(yaml.safe_dump(overlay))
    returncode, output = _dry_run(REPO, "--configfile", str(path))
    assert returncode != 0
    assert f"{expected} (set in {path})" in output
    assert "Traceback" not in output and 'File "' not in output
    assert "Building DAG" not in output


@pytest.mark.parametrize("override, expected", [
    ("predict_inptu=/x", "predict_inptu: unknown key; did you mean predict_input? (set in --config)"),
    # Before: an InputFunctionException of rule predict, with its traceback.
    ("predict_input=/no/such/scans", "predict_input: '/no/such/scans' (set in --config) is not a folder"),
])
def test_snakemake_names_a_wrong_config_override(override, expected):
    returncode, output = _dry_run(REPO, "predict", "--config", override)
    assert returncode != 0
    assert expected in output
    assert "Traceback" not in output and 'File "' not in output


def test_real_anatomy_on_a_fresh_clone_says_where_to_get_the_labels(tmp_path):
    # Elsewhere (here: a working directory without ../shared), the overlay's default labels folder is missing.
    workdir = tmp_path / "run"
    workdir.mkdir()
    overlay = REPO / "config" / "real_anatomy.yaml"
    default = yaml.safe_load(overlay.read_text())["synthetic"]["painted_labels"]
    assert not (workdir / default).exists()
    returncode, output = _dry_run(workdir, "--configfile", str(REPO / "config" / "config.yaml"), str(overlay))
    assert returncode != 0
    assert f"synthetic.painted_labels: '{default}' ({(workdir / default).resolve()}) (set in {overlay})" in output
    assert f"git clone {LABELS_REPOSITORY}" in output
    assert "Traceback" not in output
