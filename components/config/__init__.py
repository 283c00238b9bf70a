"""params.yaml, validated once into frozen typed objects; a bad key or value names itself."""

import re
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from components.config.autoencoder import DenoiseParams, TrainDenoiserParams, TrainScorerParams
from components.config.base import Section
from components.config.data import AssembleParams, PrepareParams, Source, VersionParams
from components.config.generator import GenerateParams, GeneratorParams, TrainGeneratorParams, valid_size
from components.config.quality import EvaluateParams, FilterParams, TrainJudgeParams
from components.config.transforms import ClassicParams
from components.config.upscale import TrainUpscalerParams, UpscaleParams
from components.errors import ParamsError

DEFAULT_PARAMS = Path("params.yaml")
UNION_TAGS = {cls.model_fields["kind"].annotation.__args__[0] for cls in get_args(get_args(Source)[0])}


class Params(Section):
    seed: int = Field(0, ge=0)
    # auto: the first CUDA device if there is one, else the CPU; cuda:N: the Nth GPU (one Dask worker or
    # process per GPU sets CUDA_VISIBLE_DEVICES and keeps cuda)
    device: str = "auto"
    prepare: PrepareParams
    generator: GeneratorParams = GeneratorParams()
    train_generator: TrainGeneratorParams = TrainGeneratorParams()
    generate: GenerateParams = GenerateParams()
    train_scorer: TrainScorerParams = TrainScorerParams()
    train_denoiser: TrainDenoiserParams = TrainDenoiserParams()
    denoise: DenoiseParams = DenoiseParams()
    train_upscaler: TrainUpscalerParams = TrainUpscalerParams()
    upscale: UpscaleParams = UpscaleParams()
    classic: ClassicParams = ClassicParams()   # the classifiers' augmentation: the judge's and the *_classic arms'
    train_judge: TrainJudgeParams = TrainJudgeParams()
    filter: FilterParams = FilterParams()
    assemble: AssembleParams = AssembleParams()
    evaluate: EvaluateParams = EvaluateParams()
    version: VersionParams = VersionParams()

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", device):
            raise ValueError("must be auto, cpu, cuda or cuda:N (N: the GPU's number, from 0)")
        return device

    @model_validator(mode="after")
    def _no_mirrored_digits(self) -> "Params":
        if self.prepare.source.kind == "sklearn-digits" and self.classic.hflip:
            raise ValueError("classic.hflip is true, but prepare.source is sklearn-digits: a mirrored digit is no "
                             "digit (or another one). Set classic.hflip: false")
        kind = self.generator.kind  # the recipe in use: the others' augment is never read
        recipe = getattr(self.train_generator, kind, None)
        if self.prepare.source.kind == "sklearn-digits" and recipe is not None and recipe.augment.hflip:
            raise ValueError(f"train_generator.{kind}.augment.hflip is true, but prepare.source is sklearn-digits: a "
                             "mirrored digit is no digit (or another one). Set it to false")
        return self

    @model_validator(mode="after")
    def _diffusion_size(self) -> "Params":
        if self.generator.kind == "diffusion" and self.generator.size % 4:
            raise ValueError(f"generator.size {self.generator.size}: the diffusion model's U-Net halves the images "
                             "twice, so generator.kind diffusion needs a size that is a multiple of 4 (e.g. 28 with "
                             "upscale.factor 1, or 16)")
        return self

    @model_validator(mode="after")
    def _cascade_sizes(self) -> "Params":
        """The generator samples at generator.size; upscale multiplies it by upscale.factor, which must
        give the target size, prepare.size."""
        target, size, factor = self.prepare.size, self.generator.size, self.upscale.factor
        if size * factor == target:
            return self
        if target % factor:
            problem = f"prepare.size {target} is not divisible by upscale.factor {factor}"
        elif not valid_size(target // factor):
            problem = (f"prepare.size {target} / upscale.factor {factor} = {target // factor} is no generator.size "
                       "(even and at least 8)")
        else:
            problem = f"generator.size {size} x upscale.factor {factor} = {size * factor}, but prepare.size is {target}"
        fixes = [f"generator.size {target // f} with upscale.factor {f}" for f in (2, 1, 4)
                 if target % f == 0 and valid_size(target // f)]
        raise ValueError(
            f"{problem}: the generator samples at generator.size and upscale multiplies it by upscale.factor to "
            f"reach prepare.size. For prepare.size {target} set " + (" or ".join(fixes) or "another prepare.size"))


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
    if err["type"] == "value_error" and isinstance(got, dict):
        # A check across keys (a model validator): its message names the keys and values itself.
        message = err["msg"].removeprefix("Value error, ")
        return f"{key}: {message}" if err["loc"] else message
    shown = repr(got) if not isinstance(got, dict) else "a mapping"
    return f"{key}: {err['msg']} (got {shown})"
