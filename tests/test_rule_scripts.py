"""Every name a script reads from snakemake.input / output / params is declared by its rule: a check that
catches a renamed key long before a cluster job fails on it. Keys that come from an input function
(`unpack(f)`) are those `f` returns, evaluated on the shipped config in each of its branches."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from snakemake.io import expand
from snakemake.iocontainers import Wildcards

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("input", "output", "params")
COMMON = REPO / "workflow" / "rules" / "common.smk"


class _Checkpoint:
    """A finished checkpoint, as an input function sees it."""

    def get(self):
        return SimpleNamespace(output=["made"])


# The config branches the input functions take: stage-2 crop source, demo data made or painted.
BRANCHES = ({"stage2": {"crop_source": "truth"}}, {"stage2": {"crop_source": "cv"}},
            {"synthetic": {"mode": "painted", "painted_labels": "labels"}})


def _input_function_keys(name: str, predict_input: Path) -> set[str]:
    """The keys input function `name` of common.smk returns, over its config branches and every step."""
    python = COMMON.read_text().split("\nwildcard_constraints:")[0]  # the rest is Snakemake syntax
    keys = set()
    for branch in BRANCHES:
        config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        for section, values in branch.items():
            config[section].update(values)
        config["predict_input"] = str(predict_input)
        namespace = {"expand": expand, "config": config,
                     "checkpoints": SimpleNamespace(generate_synthetic_data=_Checkpoint(),
                                                    paint_label_images=_Checkpoint())}
        exec(compile(python, str(COMMON), "exec"), namespace)
        for step in ("1", "2", "3"):
            keys |= set(namespace[name](Wildcards(fromdict={"variant": "ce", "fold": "0", "step": step})))
    return keys


def _rules():
    """rule name -> (script file, {section: declared keyword names})."""
    rules = {}
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0].strip()
            script = re.search(r'^    script:\s*\n\s*"\.\./scripts/([\w.]+)"', block, flags=re.M)
            if not script:
                continue
            declared = {}
            for section in SECTIONS:
                body = re.search(rf"^    {section}:\s*\n((?:        .*\n|\s*\n)*)", block, flags=re.M)
                declared[section] = set(re.findall(r"^        (\w+)=", body.group(1), flags=re.M)) if body else set()
                function = re.search(r"unpack\((\w+)\)", body.group(1)) if body else None
                if function:
                    declared[section].add(f"unpack:{function.group(1)}")
            rules[name] = (script.group(1), declared)
    return rules


@pytest.mark.parametrize("rule", sorted(_rules()))
def test_script_reads_only_declared_names(rule, tmp_path):
    script, declared = _rules()[rule]
    text = (REPO / "workflow" / "scripts" / script).read_text()
    for section in SECTIONS:
        names = set()
        for name in declared[section]:
            if name.startswith("unpack:"):
                names |= _input_function_keys(name.removeprefix("unpack:"), tmp_path)
            else:
                names.add(name)
        # `smk.input.get("key")` and `"key" in smk.input.keys()` read a key too
        used = (set(re.findall(rf"smk\.{section}\.(\w+)", text)) - {"get", "keys"}) | set(
            re.findall(rf'smk\.{section}\.get\("(\w+)"', text)) | set(
            re.findall(rf'"(\w+)" in smk\.{section}\.keys\(\)', text))
        assert used <= names, f"{script} reads {section} {sorted(used - names)} that rule {rule} does not declare"


def test_input_functions_are_evaluated(tmp_path):
    assert _input_function_keys("stage2_crop_inputs", tmp_path) == {"cases", "rois"}
    assert {"plans", "init", "case_labels"} <= _input_function_keys("stage2_step_inputs", tmp_path)
    assert _input_function_keys("raw_files_inputs", tmp_path) == {"made"}
