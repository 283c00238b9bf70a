"""params.yaml, validated once into frozen typed objects; a bad key or value names itself."""

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import Field, ValidationError

from components.config.base import Section
from components.config.data import AssembleParams, PrepareParams, Source, VersionParams
from components.config.generator import GenerateParams, GeneratorParams, TrainGeneratorParams
from components.errors import ParamsError

DEFAULT_PARAMS = Path("params.yaml")
UNION_TAGS = {cls.model_fields["kind"].annotation.__args__[0] for cls in get_args(get_args(Source)[0])}


class Params(Section):
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    prepare: PrepareParams
    generator: GeneratorParams = GeneratorParams()
    train_generator: TrainGeneratorParams = TrainGeneratorParams()
    generate: GenerateParams = GenerateParams()
    assemble: AssembleParams = AssembleParams()
    version: VersionParams = VersionParams()


def load_params(path: Path = DEFAULT_PARAMS, overrides: dict[str, Any] | None = None) -> Params:
    """Read and validate params.yaml; `overrides` maps dotted keys to values (`prepare.per_class`)."""
    raw = read_yaml(path)
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    return validate(raw, source=str(path))


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such file; genaug reads its configuration from params.yaml") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections (prepare:, assemble:, ...), got {type(raw).__name__}")
    return raw


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c` in nested dicts, creating the missing levels."""
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ParamsError(f"override {key}: {part} is a {type(child).__name__}, not a section")
        node = child
    node[leaf] = value


def validate(raw: dict[str, Any], source: str = "params") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{source}: {len(exc.errors())} bad value(s):"]
        lines += [f"  - {describe(err)}" for err in exc.errors()]
        raise ParamsError("\n".join(lines)) from None


def describe(err: dict[str, Any]) -> str:
    # pydantic puts the tag of a discriminated union (`imagefolder`) in the location: drop it.
    key = ".".join(str(part) for part in err["loc"] if part not in UNION_TAGS) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key; remove it or check its spelling"
    if err["type"] == "missing":
        return f"{key}: required but missing"
    got = err.get("input")
    shown = repr(got) if not isinstance(got, dict) else "a mapping"
    return f"{key}: {err['msg']} (got {shown})"
