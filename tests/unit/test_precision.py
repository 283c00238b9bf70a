"""A trainer's precision: auto takes bf16 on CUDA and on a CPU with bf16 in hardware, fp32 on other CPUs;
bad settings are refused with the key named."""

import pytest
import torch

from components import device as device_module
from components.config import load_params
from components.errors import ParamsError
from components.device import autocast, bf16_in_cpuinfo, describe, resolve_precision
from tests.unit.test_config import REPO, base, error_of

CPU = torch.device("cpu")

X86_BF16 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
X86_PLAIN = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


@pytest.mark.parametrize("text, expected", [(X86_BF16, True), (X86_PLAIN, False), (ARM_BF16, True), ("", False)])
def test_bf16_hardware_is_read_from_cpuinfo(text, expected):
    assert bf16_in_cpuinfo(text) is expected


@pytest.mark.parametrize("hardware, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_takes_bf16_on_a_cpu_only_where_the_hardware_has_it(monkeypatch, hardware, expected):
    monkeypatch.setattr(device_module, "cpu_computes_bf16", lambda: hardware)
    assert resolve_precision(CPU, "auto") == expected
    assert resolve_precision(torch.device("cuda"), "auto") == "bf16"
    assert resolve_precision(CPU, "fp32") == "fp32" and resolve_precision(CPU, "bf16") == "bf16"
    assert describe(CPU, resolve_precision(CPU)).endswith(f"{expected})")


def test_inference_keeps_fp32_on_the_cpu():
    with autocast(CPU):
        assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.float32
    with autocast(CPU, "bf16"):
        assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.bfloat16


def test_shipped_params_let_each_trainer_pick_its_precision():
    params = load_params(REPO / "params.yaml")
    for recipe in (params.train_judge, params.evaluate.fit, params.train_scorer, params.train_denoiser,
                   params.train_upscaler, params.train_generator, params.train_generator.cvae):
        assert recipe.precision == "auto"


@pytest.mark.parametrize("section", ["train_judge", "train_generator"])
def test_a_bad_precision_is_refused_with_its_key(section):
    raw = base()
    raw.setdefault(section, {})["precision"] = "fp16"
    message = error_of(raw)
    assert f"{section}.precision" in message and "'bf16'" in message
    with pytest.raises(ParamsError, match="precision: 'fp16' is not one of auto, fp32, bf16"):
        resolve_precision(CPU, "fp16")


@pytest.mark.parametrize("hardware, expected", [(True, "bf16"), (False, "fp32")])
def test_evaluate_sends_its_runs_out_at_the_driver_s_precision(monkeypatch, hardware, expected):
    """A Dask worker's CPU may lack bf16: evaluate resolves `auto` once, where it runs, for every run it sends."""
    from components.stages.evaluate import driver_precision
    monkeypatch.setattr(device_module, "cpu_computes_bf16", lambda: hardware)
    params = load_params(REPO / "params.yaml")
    pinned = driver_precision(params, CPU)
    assert pinned.evaluate.fit.precision == expected and params.evaluate.fit.precision == "auto"
    others = {"precision"}
    assert pinned.evaluate.fit.model_dump(exclude=others) == params.evaluate.fit.model_dump(exclude=others)
