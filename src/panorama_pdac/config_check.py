"""The configuration as a contract, checked when Snakemake starts, before any job (dry runs included).

The schema (workflow/schemas/config.schema.yaml) names every key. A key it does not name, a value of the wrong
type, or a painted-labels or predict_input folder that is not there stops the workflow with one list of every
problem, each naming the key's path in the config, the file that set it (config/config.yaml, an overlay passed
with --configfile, or --config) and, for a misspelt key, the nearest valid name:

    synthetic.enable: unknown key; did you mean synthetic.enabled? (set in my_data.yaml)
"""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from .errors import ConfigError

LABELS_REPOSITORY = "https://github.com/DIAGNijmegen/panorama_labels"
# What painted mode reads from a panorama_labels clone (common.smk: raw_data).
PAINTED_CONTENTS = ("manual_labels", "automatic_labels", "clinical_information.xlsx")

# (where a part of the config came from, as a user would name it; what it holds), in merge order.
Source = tuple[str, Mapping]


def load_schema(path: str | os.PathLike) -> dict:
    return yaml.safe_load(Path(path).read_text())


def merged_config_files(paths: Sequence[str | os.PathLike]) -> dict:
    """The configuration `snakemake --configfile A B ...` runs with: each file merged into those before it by
    Snakemake's own rule (nested keys merged, the later file winning), for code that reads it outside a run."""
    from snakemake.utils import update_config

    config: dict = {}
    for path in paths:
        update_config(config, yaml.safe_load(Path(path).read_text()) or {})
    return config


def _with_defaults(validator_class):
    """Fill a missing key with its schema `default` before validating the object that holds it (as
    snakemake.utils.validate does), so the workflow can read every key the schema defaults."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(Draft202012Validator)


def _dotted(path: Sequence) -> str:
    return ".".join(map(str, path)) or "the configuration"


def _holds(mapping: Any, path: Sequence) -> bool:
    for key in path:
        if not isinstance(mapping, Mapping) or key not in mapping:
            return False
        mapping = mapping[key]
    return True


def _set_in(path: Sequence, sources: Sequence[Source], last_only: bool = False) -> str:
    names = list(dict.fromkeys(name for name, data in sources if _holds(data, path)))
    if last_only:
        names = names[-1:]
    return f" (set in {', '.join(names)})" if names else ""


def _unknown_key(path: tuple, known: Sequence[str], sources: Sequence[Source]) -> str:
    key, parent = str(path[-1]), path[:-1]
    head = key.split(".")[0]
    if "." in key and head in known:
        hint = f"nested keys are written as nested mappings ({head}: {{{key.split('.', 1)[1]}: ...}})"
    else:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if close:
            hint = f"did you mean {_dotted((*parent, close[0]))}?"
        else:
            hint = f"valid keys here: {', '.join(known)}" if known else "no keys are valid here"
    return f"{_dotted(path)}: unknown key; {hint}{_set_in(path, sources)}"


def _describe(error: ValidationError, sources: Sequence[Source]) -> Iterator[str]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = list(error.schema.get("properties", {}))
        for key in error.instance:
            if key not in known:
                yield _unknown_key((*path, key), known, sources)
    elif error.validator == "required":
        for key in error.validator_value:
            if key not in error.instance:
                yield f"{_dotted((*path, key))}: required key missing"
    else:
        # oneOf / anyOf: the reason of the alternative of the value's type, not "not valid under any of".
        reason = best_match([e for e in error.context if e.validator != "type"] or error.context) if error.context \
            else error
        hint = ""
        if reason.validator == "enum" and isinstance(reason.instance, str):
            close = difflib.get_close_matches(reason.instance, [str(v) for v in reason.validator_value], n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
        yield f"{_dotted(path)}: {reason.message}{hint}{_set_in(path, sources, last_only=True)}"


def schema_problems(config: dict, schema: Mapping, sources: Sequence[Source] = ()) -> list[str]:
    """Every way `config` (merged) breaks `schema`, each naming the key; fills the schema's defaults in."""
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    return list(dict.fromkeys(line for error in errors for line in _describe(error, sources)))


def painted_labels_problems(config: Mapping, sources: Sequence[Source] = ()) -> list[str]:
    """Painted mode paints CT onto a panorama_labels clone; a fresh clone of this project has none beside it."""
    synthetic = config["synthetic"]
    if not (synthetic["enabled"] and synthetic["mode"] == "painted"):
        return []
    folder = synthetic["painted_labels"]
    where = _set_in(("synthetic", "painted_labels"), sources, last_only=True)
    resolved = str(Path(folder).resolve())
    at = f"'{folder}'{'' if resolved == folder else f' ({resolved})'}{where}"
    if not folder:
        what = f"is empty{where}"
    elif not Path(folder).is_dir():
        what = f"{at} is not a folder"
    else:
        missing = [name for name in PAINTED_CONTENTS if not (Path(folder) / name).exists()]
        if not missing:
            return []
        what = f"{at} holds no {', '.join(missing)}"
    return ["\n    ".join([
        f"synthetic.painted_labels: {what}.",
        "Painted mode (synthetic.mode: painted) paints CT onto the label maps of a panorama_labels clone:",
        f"  git clone {LABELS_REPOSITORY}",
        f"then set synthetic.painted_labels to that folder (with {', '.join(PAINTED_CONTENTS)}).",
    ])]


def predict_input_problems(config: Mapping, sources: Sequence[Source] = ()) -> list[str]:
    """Once set (`--config predict_input=DIR`, for `snakemake predict`), the scans folder and the predicting
    variant are checked here; unset, only a run that asks for predictions complains (common.smk)."""
    folder = config["predict_input"]
    if not folder:
        return []
    problems = []
    at = f"'{folder}'{_set_in(('predict_input',), sources, last_only=True)}"
    if not Path(folder).is_dir():
        problems.append(f"predict_input: {at} is not a folder (of CT scans to predict)")
    elif not any(p.is_file() and not p.name.startswith(".") for p in Path(folder).iterdir()):
        problems.append(f"predict_input: {at} holds no files")
    variant, variants = config["predict"]["variant"], list(config["stage2"]["variants"])
    if variant not in variants:
        problems.append(f"predict.variant: '{variant}'{_set_in(('predict', 'variant'), sources, last_only=True)} "
                        f"is not one of stage2.variants ({', '.join(variants)})")
    return problems


def check_config(config: dict, schema: Mapping, sources: Sequence[Source] = ()) -> None:
    """Raise ConfigError listing every problem of the merged `config`; `sources` (in merge order) let each
    message say which file set the key."""
    problems = schema_problems(config, schema, sources)
    footer = ["Every key is described in workflow/schemas/config.schema.yaml."] if problems else []
    if not problems:
        problems = painted_labels_problems(config, sources) + predict_input_problems(config, sources)
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise ConfigError("\n".join([
            f"The configuration has {count}; nothing has run:",
            *(f"  {problem}" for problem in problems),
            *footer,
        ]))


def _shown(path: str | os.PathLike) -> str:
    """A config file as the user would write it: relative when below the working directory."""
    relative = os.path.relpath(Path(path).absolute())
    return str(path) if relative.startswith("..") else relative


def workflow_sources(workflow) -> list[Source]:
    """The parts Snakemake merged into `config`, in its order: the Snakefile's `configfile:`, the files of
    --configfile (`workflow.overwrite_configfiles`), then --config."""
    from snakemake.common.configfile import load_configfile

    overlays = list(workflow.overwrite_configfiles)
    # workflow.configfiles: the --configfile files, then each file the Snakefile's `configfile:` loaded.
    files = list(workflow.configfiles)[len(overlays):] + overlays
    sources = [(_shown(f), load_configfile(f) or {}) for f in files]
    return sources + [("--config", dict(workflow.config_settings.config))]


def check_workflow_config(workflow, config: dict, schema: str) -> None:
    """The Snakefile's check (`schema` relative to the Snakefile). A problem ends Snakemake with the list alone:
    Snakemake would print an exception raised here followed by the frames that raised it."""
    try:
        check_config(config, load_schema(Path(workflow.basedir) / schema), workflow_sources(workflow))
    except ConfigError as error:
        raise SystemExit(str(error)) from None
