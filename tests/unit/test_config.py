"""params.yaml validation: the shipped file is valid; bad keys, types and values name themselves."""

from pathlib import Path

import pytest
import yaml

from components.config import load_params, validate
from components.errors import ParamsError

REPO = Path(__file__).resolve().parents[2]


def base() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def error_of(raw: dict) -> str:
    with pytest.raises(ParamsError) as info:
        validate(raw)
    return str(info.value)


def test_shipped_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params.prepare.source.kind == "fashion-mnist"
    assert params.prepare.size == 28


def test_unknown_key_is_named():
    raw = base()
    raw["prepare"]["per_klass"] = 5
    assert "prepare.per_klass: unknown key" in error_of(raw)


def test_wrong_type_names_key_and_value():
    raw = base()
    raw["prepare"]["per_class"] = "many"
    message = error_of(raw)
    assert "prepare.per_class" in message and "'many'" in message


def test_bad_choice_lists_the_allowed_values():
    raw = base()
    raw["prepare"]["source"] = {"kind": "tfrecord", "path": "x"}
    message = error_of(raw)
    assert "prepare.source" in message and "'imagefolder'" in message and "'sklearn-digits'" in message
    raw = base()
    raw["prepare"]["on_bad_file"] = "ignore"
    assert "prepare.on_bad_file" in error_of(raw) and "'skip'" in error_of(raw)


def test_missing_required_field_drops_the_union_tag():
    raw = base()
    raw["prepare"]["source"] = {"kind": "imagefolder"}
    assert "prepare.source.path: required but missing" in error_of(raw)


def test_two_budgets_are_refused():
    raw = base()
    raw["prepare"]["fraction"] = 0.5
    assert "set one label budget" in error_of(raw)


def test_params_are_frozen():
    params = load_params(REPO / "params.yaml")
    with pytest.raises(Exception):
        params.prepare.size = 32


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ParamsError, match="no such file"):
        load_params(tmp_path / "params.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("prepare: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    bad.write_text("- a list")
    with pytest.raises(ParamsError, match="expected a mapping"):
        load_params(bad)


def test_dotted_overrides_apply_and_validate():
    params = load_params(REPO / "params.yaml", {"prepare.per_class": 7, "seed": 3})
    assert params.prepare.per_class == 7 and params.seed == 3
    with pytest.raises(ParamsError, match="prepare.channels"):
        load_params(REPO / "params.yaml", {"prepare.channels": 4})


def test_mirrored_digits_are_refused_with_the_fix():
    raw = {"prepare": {"source": {"kind": "sklearn-digits", "path": "x"}}}
    with pytest.raises(ParamsError, match="Set classic.hflip: false"):
        validate(raw)
    assert not validate({**raw, "classic": {"hflip": False}}).classic.hflip


# Keys whose code default differs from params.yaml on purpose: the label budget is one of two keys, so the
# code leaves both unset (all images) and a user who sets `fraction` does not also have to null `per_class`.
DEFAULTS_DIFFER = {"prepare.per_class"}


def test_code_defaults_equal_params_yaml():
    """A library user or a test that leaves a key out gets what params.yaml ships, not another pipeline."""
    shipped = load_params(REPO / "params.yaml").model_dump(mode="json")
    source = base()["prepare"]["source"]
    defaults = validate({"prepare": {"source": source}}).model_dump(mode="json")

    def differences(a: object, b: object, key: str = "") -> list[str]:
        if isinstance(a, dict):
            return [d for k in a for d in differences(a[k], b.get(k), f"{key}.{k}".lstrip("."))]
        return [] if a == b or key in DEFAULTS_DIFFER else [f"{key}: params.yaml {a!r}, code {b!r}"]

    assert differences(shipped, defaults) == []


@pytest.mark.parametrize("setting", ["auto", "cpu", "cuda", "cuda:0", "cuda:3"])
def test_device_settings_that_validate(setting):
    raw = base()
    raw["device"] = setting
    assert validate(raw).device == setting


@pytest.mark.parametrize("setting", ["gpu", "cuda:", "cuda:x", "CPU", "mps"])
def test_device_settings_that_do_not(setting):
    raw = base()
    raw["device"] = setting
    message = error_of(raw)
    assert "device" in message and setting in message


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks a machine without CUDA")
@pytest.mark.parametrize("setting", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_names_the_fix(setting):
    from components.device import resolve_device
    with pytest.raises(ParamsError, match=f"device: {setting}, but torch sees no CUDA device.*set device: auto or cpu"):
        resolve_device(setting)
    assert str(resolve_device("auto")) == "cpu"


@pytest.mark.parametrize("classes, message", [
    ([], "keeps fewer than 2 classes"), (["Bag"], "keeps fewer than 2 classes"),
    (["Bag", "Coat", "Bag"], "names ['Bag'] more than once")])
def test_prepare_classes_keep_two_or_more_each_once(classes, message):
    raw = base()
    raw["prepare"]["classes"] = classes
    error = error_of(raw)
    assert "prepare.classes" in error and message in error


def test_a_rare_class_listed_twice_is_named():
    raw = base()
    raw["prepare"]["imbalance"] = {"classes": ["Bag", "Bag"]}
    assert "prepare.imbalance.classes" in error_of(raw)
