"""The stage DAG the Prefect flow schedules from dvc.yaml, and dvc.lock's stage order after stages ran at once."""

import subprocess
from pathlib import Path

import pytest
from dvc.utils.serialize import dump_yaml, load_yaml

from components import pipeline
from components.dvc_cli import dvc

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


def test_stage_order_is_the_order_dvc_repro_runs_and_records_the_stages(tmp_path):
    """A branching DAG written out of order in dvc.yaml: stage_order gives dvc repro's plan (what the flow
    follows so that dvc.lock comes out the same), which is the order dvc.lock records after a real repro."""
    stages = {"report": {"cmd": "cat b.txt c.txt > report.txt", "deps": ["b.txt", "c.txt"], "outs": ["report.txt"]},
              "c": {"cmd": "cp a.txt c.txt", "deps": ["a.txt"], "outs": ["c.txt"]},
              "a": {"cmd": "echo a > a.txt", "outs": ["a.txt"]},
              "b": {"cmd": "cp a.txt b.txt", "deps": ["a.txt"], "outs": ["b.txt"]},
              "lone": {"cmd": "echo x > lone.txt", "outs": ["lone.txt"]}}
    dump_yaml(tmp_path / "dvc.yaml", {"stages": stages})
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc(tmp_path, "init", "-q")
    order = pipeline.stage_order(tmp_path)
    assert sorted(order) == sorted(stages) and order.index("a") < min(order.index("b"), order.index("c"))
    assert order.index("report") > max(order.index("b"), order.index("c"))
    assert dvc(tmp_path, "repro").returncode == 0
    assert list(load_yaml(tmp_path / "dvc.lock")["stages"]) == order


def test_stage_order_names_what_stops_dvc_from_planning(tmp_path):
    dump_yaml(tmp_path / "dvc.yaml", {"stages": {"a": {"cmd": "true", "deps": ["b.txt"], "outs": ["a.txt"]},
                                                 "b": {"cmd": "true", "deps": ["a.txt"], "outs": ["b.txt"]}}})
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc(tmp_path, "init", "-q")
    with pytest.raises(pipeline.StageError, match="(?s)could not plan the pipeline:.*ERROR: .*stages: [ab], [ab]"):
        pipeline.stage_order(tmp_path)


def test_a_stage_sharing_the_cores_waits_passively_unless_the_user_chose_a_policy():
    assert pipeline.sharing_env({"PATH": "/bin"}) == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE"}
    assert pipeline.sharing_env({"OMP_WAIT_POLICY": "active"})["OMP_WAIT_POLICY"] == "active"


def test_stages_training_in_bf16_on_the_cpu_do_not_share_its_cores():
    # two 2-thread bf16 trainings on 2 cores: one at a time, with the reason and the two ways out
    count, why = pipeline.stages_at_once(2, ["train_judge", "evaluate"], cores=2, threads=2)
    assert count == 1 and "train_judge, evaluate train in bf16" in why and "OMP_NUM_THREADS to at most 1" in why
    assert pipeline.stages_at_once(4, ["evaluate"], cores=16, threads=4) == (4, None)  # the cores hold them
    assert pipeline.stages_at_once(4, ["evaluate"], cores=16, threads=8)[0] == 2
    assert pipeline.stages_at_once(2, [], cores=2, threads=2) == (2, None)  # fp32 may share (passive waiting)


def test_the_trainers_in_bf16_on_the_cpu_come_from_params(tmp_path, monkeypatch):
    import components.device

    params = load_yaml(REPO / "params.yaml")
    params["device"] = "cpu"
    dump_yaml(tmp_path / "params.yaml", params)
    monkeypatch.setattr(components.device, "cpu_computes_bf16", lambda: True)
    # the defaults: no denoiser (strength 0) and no upscaler (factor 1) is trained
    assert pipeline.bf16_cpu_trainers(tmp_path) == ["train_generator", "train_scorer", "train_judge", "evaluate"]
    dump_yaml(tmp_path / "params.yaml", {**params, "denoise": {**params["denoise"], "strength": 1.0},
                                         "upscale": {**params["upscale"], "factor": 2},
                                         "generator": {**params["generator"], "size": 14}})
    assert pipeline.bf16_cpu_trainers(tmp_path) == ["train_generator", "train_scorer", "train_denoiser",
                                                   "train_upscaler", "train_judge", "evaluate"]
    monkeypatch.setattr(components.device, "cpu_computes_bf16", lambda: False)  # auto means fp32 there
    assert pipeline.bf16_cpu_trainers(tmp_path) == []
    params["train_judge"]["precision"] = "bf16"
    params["train_generator"]["cvae"]["precision"] = "fp32"
    dump_yaml(tmp_path / "params.yaml", params)
    assert pipeline.bf16_cpu_trainers(tmp_path) == ["train_judge"]
