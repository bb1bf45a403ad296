"""Config validation against edgelaw/schemas/config.schema.yaml, with defaults filled in.

Errors name the path of the key (models.tiny.source) and what is allowed, all at once.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from edgelaw.core.errors import EdgelawError
from edgelaw.schemas import schema_path

SCHEMA = schema_path("config")


def validator_with_defaults(schema: dict):
    from jsonschema import Draft7Validator, validators

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from Draft7Validator.VALIDATORS["properties"](validator, properties, instance, schema)

    cls = validators.extend(Draft7Validator, {"properties": set_defaults})
    return cls(schema)


def describe_error(error) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hint = f"allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key(s) {', '.join(map(repr, extra))}; {hint}"
    if error.validator == "pattern" and "propertyNames" in error.absolute_schema_path:
        return (f"{where}: the name {error.instance!r} is not allowed: a name becomes a folder and a wildcard of "
                f"the workflow's paths, so it must match {error.validator_value} (no '/', no spaces); rename it")
    if error.validator == "not" and isinstance(error.instance, dict):
        return (f"{where}: the keys {', '.join(sorted(error.instance))} do not go together; give one of its forms "
                f"(the schema's description of {where} lists them)")
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not allowed; use one of {', '.join(map(str, error.validator_value))}"
    return f"{where}: {error.message}"


def load_schema(path: Path = SCHEMA) -> dict:
    return yaml.safe_load(path.read_text())


def load_config_file(path: str | Path) -> dict:
    """A config YAML file as a dict; a missing file or a YAML error names the file, the line and the fix."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise EdgelawError(f"config {path}: cannot read it ({exc.strerror}); check the path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise EdgelawError(f"config {path}{where}: not valid YAML ({problem}); fix the file there") from None
    if not isinstance(data, dict):
        raise EdgelawError(f"config {path}: expected a mapping of keys (models:, schemes:, ...), got {type(data).__name__}")
    return data


def defaults(section: str, given: dict | None = None) -> dict:
    """One top-level section (bench, quality, laws, ...) with the schema's defaults filled in around
    `given`; for tools that use a stage's code without a whole config (benchmarks, tests)."""
    schema = load_schema()
    validator = validator_with_defaults(schema).evolve(schema=schema["properties"][section])
    value = copy.deepcopy(given or {})
    problems = [describe_error(e) for e in validator.iter_errors(value)]
    if problems:
        raise EdgelawError(f"invalid {section} settings:\n  " + "\n  ".join(problems))
    return value


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _coerce_command_line(config: dict, schema: dict) -> None:
    """`--config force_device=true` arrives as the string 'true', `devices=x86,rpi5` as 'x86,rpi5': read
    them as the schema's type."""
    for key, value in config.items():
        kinds = schema.get("properties", {}).get(key, {}).get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if not isinstance(value, str):
            continue
        if "array" in kinds and value.lower() not in {"null", "none"}:
            config[key] = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        elif "boolean" in kinds and value.lower() in _TRUE | _FALSE:
            config[key] = value.lower() in _TRUE
        elif "null" in kinds and value.lower() in {"null", "none", ""}:
            config[key] = None


def validate(config: dict, schema_path: Path = SCHEMA) -> dict:
    """Return a validated copy of `config` with defaults; raise EdgelawError listing every problem."""
    config = copy.deepcopy(dict(config))
    comparisons_given = "comparisons" in config
    schema = load_schema(schema_path)
    _coerce_command_line(config, schema)
    validator = validator_with_defaults(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [describe_error(e) for e in errors]
    if not problems:
        for name, model in config["models"].items():
            for scheme in model.get("schemes", []):
                if scheme not in config["schemes"]:
                    problems.append(
                        f"models.{name}.schemes: {scheme!r} is not a defined scheme; define it under schemes: "
                        f"(defined: {', '.join(config['schemes'])})"
                    )
    if not problems:
        problems += _check_vision(config) + _check_pypi(config)
    if not problems:
        problems += _check_comparisons(config, comparisons_given) + _check_budgets(config)
    if not problems and config["devices"] and config["quality"]["per_device"]:
        problems.append("quality.per_device: a fleet (devices) shares one quality folder, scored on the compute "
                        "partition; set quality.per_device: false, or measure each device in a run of its own")
    if problems:
        raise EdgelawError("invalid config:\n  " + "\n  ".join(problems))
    return config


def _check_vision(config: dict) -> list[str]:
    problems = []
    for name, model in config["models"].items():
        if model.get("mmproj"):
            continue
        if "resolution" in model.get("workloads", []):
            problems.append(f"models.{name}.workloads: resolution needs a vision projector; set models.{name}.mmproj")
        for key in ("image_max_tokens", "image_min_tokens"):
            if model.get(key) is not None:
                problems.append(f"models.{name}.{key}: only a VLM has an image clamp; set models.{name}.mmproj or remove it")
    return problems


def _check_budgets(config: dict) -> list[str]:
    """The answer's budgets: a prompt length inside the measured range, an accuracy the tasks measure."""
    budgets, problems = config["budgets"], []
    lengths = config["bench"]["prompt_tokens"]
    p = budgets["prompt_tokens"]
    if p is not None and not min(lengths) <= p <= max(lengths):
        problems.append(f"budgets.prompt_tokens: {p} is outside the measured prompt lengths (bench.prompt_tokens "
                        f"{min(lengths)} to {max(lengths)}); pick one in that range, or measure it")
    sets = config["tasks"]["sets"]
    for key in ("min_accuracy_pct", "accuracy"):
        if budgets[key] is not None and not sets:
            problems.append(f"budgets.{key}: needs task accuracy, and tasks.sets is empty; add tasks to tasks.sets "
                            "(docs/tasks.md) or set it to null")
    task = (budgets["accuracy"] or "").split("/")[0]
    if task and sets and task not in sets:
        problems.append(f"budgets.accuracy: {budgets['accuracy']!r} names task {task!r}, which tasks.sets does not "
                        f"score ({', '.join(sets)}); name one of those, or null for their mean")
    return problems


def run_devices(config: dict) -> list[str]:
    """The devices a run measures: its fleet (devices), else its one device."""
    return list(config["devices"] or [config["device"]])


def device_partition(config: dict, device: str) -> str:
    """The SLURM partition of a device's nodes (cluster.partitions, else the partition of its name)."""
    return config["cluster"]["partitions"].get(device, device)


def _check_pypi(config: dict) -> list[str]:
    """A pypi source gives one wheel (package, optional member) or a split GGUF (parts), in joining order."""
    from edgelaw.core.wheelparts import order_problems, parts_of

    problems = []
    for name, model in config["models"].items():
        for where, spec in ((name, model), (f"{name}.mmproj", model.get("mmproj") or {})):
            if spec.get("source") != "pypi":
                continue
            if ("package" in spec) == ("parts" in spec):
                problems.append(f"models.{where}: a pypi source needs either package (a GGUF in one wheel) or parts "
                                "(a GGUF split across wheels, in order), not both or neither")
            elif "parts" in spec and "member" in spec:
                problems.append(f"models.{where}.member: a split GGUF names the member of each part in "
                                f"models.{where}.parts; remove it")
            else:
                problems += order_problems(where, parts_of(spec))
    return problems


def model_workloads(config: dict, model: str) -> list[str]:
    """The bench workloads of one model: its own list, else bench.workloads; resolution only for a VLM."""
    spec = config["models"][model]
    chosen = spec.get("workloads") or config["bench"]["workloads"]
    return [w for w in chosen if w != "resolution" or spec.get("mmproj")]


# Model keys that are not about the language GGUF: changing them must not refetch it.
NOT_FETCH_KEYS = {"schemes", "workloads", "mmproj", "image_max_tokens", "image_min_tokens", "quality"}


def fetch_spec(config: dict, model: str) -> dict:
    """What the fetch job of `model` reads: its entry without the keys that are not about its GGUF."""
    return {k: v for k, v in config["models"][model].items() if k not in NOT_FETCH_KEYS}


def _arm_exists(config: dict, arm: str) -> bool:
    if "/" in arm:
        model, scheme = arm.split("/", 1)
        return model in config["models"] and scheme in model_schemes(config, model)
    return any(arm in model_schemes(config, m) for m in config["models"])


def _check_comparisons(config: dict, given: bool) -> list[str]:
    """The default pairs keep only those this ladder has; a pair the user wrote must exist."""
    if not given:
        config["comparisons"] = [p for p in config["comparisons"]
                                 if _arm_exists(config, p["baseline"]) and _arm_exists(config, p["variant"])]
        return []
    return [
        f"comparisons[{i}]: {arm!r} is not a model/scheme of this config; write 'scheme' or 'model/scheme' "
        "naming a defined model and one of its schemes"
        for i, pair in enumerate(config["comparisons"]) for arm in (pair["baseline"], pair["variant"])
        if not _arm_exists(config, arm)
    ]


def model_schemes(config: dict, model: str) -> list[str]:
    return config["models"][model].get("schemes") or list(config["schemes"])


class SectionSettings:
    """A stage's settings dataclass, built from one section of the validated config: every field from
    the key of its name (the defaults are the schema's; the dataclass repeats none)."""

    @classmethod
    def from_config(cls, section: dict):
        if missing := [k for k in cls.__dataclass_fields__ if k not in section]:
            raise EdgelawError(
                f"{cls.__name__}: missing {', '.join(missing)}; pass the section of a validated config, whose "
                "defaults fill every key (edgelaw.core.config.defaults)"
            )
        return cls(**{k: section[k] for k in cls.__dataclass_fields__})
