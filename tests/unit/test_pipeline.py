"""The stage DAG the Prefect flow schedules from dvc.yaml, and dvc.lock's stage order after stages ran at once."""

from pathlib import Path

from dvc.utils.serialize import dump_yaml, load_yaml

from components import pipeline

REPO = Path(__file__).resolve().parents[2]
TRAINERS = {"train_generator", "train_scorer", "train_denoiser", "train_upscaler", "train_judge"}


def test_the_trainers_wait_only_for_prepare_and_evaluate_for_all_it_reads():
    before = pipeline.stage_predecessors(REPO)
    assert before["prepare"] == set()
    assert all(before[t] == {"prepare"} for t in TRAINERS)  # the five trainers can run at once
    assert before["generate"] == {"prepare", "train_generator"}
    assert before["upscale"] == {"denoise", "train_upscaler"}
    assert before["evaluate"] == {"assemble", "train_judge"}


def entry(n: int) -> dict:
    return {"cmd": f"python -m components s{n}", "outs": [{"path": f"data/s{n}", "md5": f"{n:032d}"}]}


def test_restore_lock_order_keeps_recorded_stages_and_appends_new_ones_in_repro_order(tmp_path):
    # a (recorded before) stays first; b and c finished in the order c, b but go in dvc repro's order b, c
    dump_yaml(tmp_path / "dvc.lock", {"schema": "2.0", "stages": {"c": entry(3), "a": entry(1), "b": entry(2)}})
    pipeline.restore_lock_order(tmp_path, before=["a"], order=["a", "b", "c"])
    lock = load_yaml(tmp_path / "dvc.lock")
    assert list(lock["stages"]) == ["a", "b", "c"] and lock["stages"]["c"] == entry(3)
    written = (tmp_path / "dvc.lock").read_text()
    dump_yaml(tmp_path / "straight.lock", {"schema": "2.0", "stages": {"a": entry(1), "b": entry(2), "c": entry(3)}})
    assert written == (tmp_path / "straight.lock").read_text()  # byte for byte what DVC writes in that order
