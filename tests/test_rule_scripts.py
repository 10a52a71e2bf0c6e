"""Every name a script reads from snakemake.input / output / params is declared by its rule: a static
check that catches a renamed key long before a cluster job fails on it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("input", "output", "params")


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
                if body and re.search(r"unpack\((\w+)\)", body.group(1)):
                    declared[section].add("*")  # keys come from an input function
            rules[name] = (script.group(1), declared)
    return rules


@pytest.mark.parametrize("rule", sorted(_rules()))
def test_script_reads_only_declared_names(rule):
    script, declared = _rules()[rule]
    text = (REPO / "workflow" / "scripts" / script).read_text()
    for section in SECTIONS:
        used = set(re.findall(rf"smk\.{section}\.(\w+)", text))
        if "*" in declared[section]:
            continue
        assert used <= declared[section], f"{script} reads {section} {sorted(used - declared[section])} " \
                                          f"that rule {rule} does not declare"
