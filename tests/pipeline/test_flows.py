"""Prefect flows on the fake converter: task names, states, artifacts, fan-out, Dask."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from pipeline.stages import STAGES

HERE = Path(__file__).resolve().parent


def _task_runs(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def go():
        async with get_client() as client:
            return await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))

    return asyncio.run(go())


def _settled_task_runs(flow_run_id, expected: int, final=lambda r: r.state.is_final(), timeout=20.0):
    """Task runs are recorded asynchronously (events): poll until all of them arrived in a final state."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        runs = _task_runs(flow_run_id)
        if (len(runs) >= expected and all(r.state is not None and final(r) for r in runs)) or time.monotonic() > deadline:
            return runs
        time.sleep(0.25)


def _artifacts(key):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def go():
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))

    return asyncio.run(go())


def _flow_run_name(flow_run_id) -> str:
    from prefect.client.orchestration import get_client

    async def go():
        async with get_client() as client:
            return (await client.read_flow_run(flow_run_id)).name

    return asyncio.run(go())


def test_build_flow_runs_five_named_tasks_and_publishes_artifacts(prefect_api, use_fake, configs, artifacts):
    from pipeline import flows

    path = configs.write(name="flowcfg")
    state = flows.build(str(path), str(artifacts), return_state=True)
    summary = state.result()
    assert summary["ok"] and [s["status"] for s in summary["stages"]] == ["built"] * 5
    runs = _settled_task_runs(state.state_details.flow_run_id, len(STAGES))
    assert sorted(r.task_key.split("-")[0] for r in runs) == sorted(STAGES) or \
        sorted(r.name.split("-")[0] for r in runs) == sorted(STAGES)
    assert all(r.state.is_completed() for r in runs), [(r.name, r.state.name, r.state.message) for r in runs]

    state = flows.build(str(path), str(artifacts), return_state=True)
    runs = _settled_task_runs(state.state_details.flow_run_id, len(STAGES))
    assert {r.state.name for r in runs} == {"Cached"}
    assert sum(s["seconds"] for s in state.result()["stages"]) < 1.0

    # one build-summary artifact per build, linked to its flow run
    (art,) = [a for a in _artifacts("tf2trt-flowcfg-summary") if a.flow_run_id == state.state_details.flow_run_id]
    md = art.data
    assert art.description == "Build summary of flowcfg: OK"
    assert all(f"| {name} | cached |" in md for name in STAGES), md
    assert "| out |" in md and "max_abs_err" in md and "| rtol | atol |" in md
    assert "reference executor" in md and "was **not** run" in md  # says what was checked (the fake's report)
    assert "TensorRT" in md and summary["engine_digest"] in md and "precision" in md
    for old in ("stages", "verification", "engine"):  # the three per-build cards it replaces
        assert not _artifacts(f"tf2trt-flowcfg-{old}")


def _assert_chain(runs: dict) -> None:
    """Each stage's task run has the stage before it (and only that one) as its input: the run graph's edges."""
    def inputs(stage):
        return [getattr(i, "id", None) for ins in runs[stage].task_inputs.values() for i in ins]

    assert inputs("freeze") == [], runs["freeze"].task_inputs
    for before, stage in zip(STAGES, STAGES[1:]):
        assert inputs(stage) == [runs[before].id], (stage, runs[stage].task_inputs)
        assert runs[stage].task_inputs["previous"][0].id == runs[before].id


def test_the_run_graph_chains_the_stages_in_pipeline_order(prefect_api, use_fake, configs, artifacts):
    from pipeline import flows

    state = flows.build(str(configs.write(name="chain")), str(artifacts), return_state=True)
    assert state.result()["ok"]
    _assert_chain({r.name.split("-")[0]: r for r in _settled_task_runs(state.state_details.flow_run_id, len(STAGES))})
    # a failed stage keeps its edge, and the stages after it still run (Skipped, not Prefect's NotReady)
    bad = configs.write(name="chainbad", model="b.keras", model_bytes=b"BROKEN")
    state = flows.build(str(bad), str(artifacts), return_state=True)
    runs = {r.name.split("-")[0]: r for r in _settled_task_runs(state.state_details.flow_run_id, len(STAGES))}
    _assert_chain(runs)
    assert runs["freeze"].state.is_failed()
    assert [runs[s].state.name for s in STAGES[1:]] == ["Skipped"] * 4
    # several configs on a thread pool: one chain per config
    paths = [str(configs.write(name=f"fan{i}", model=f"f{i}.keras", model_bytes=f"fan {i}".encode()))
             for i in range(2)]
    state = flows.build_all(paths, str(artifacts), return_state=True)
    assert all(s["ok"] for s in state.result())
    runs = _settled_task_runs(state.state_details.flow_run_id, 2 * len(STAGES))
    for i in range(2):
        _assert_chain({r.name.split("-")[0]: r for r in runs if r.name.endswith(f"-fan{i}")})


def test_a_failed_stage_is_a_failed_task(prefect_api, use_fake, configs, artifacts):
    from pipeline import flows

    path = configs.write(name="broken", model_bytes=b"BROKEN")
    state = flows.build(str(path), str(artifacts), return_state=True)
    assert state.is_failed()
    summary = state.result(raise_on_failure=False)
    assert not summary["ok"]
    runs = {r.name.split("-")[0]: r for r in _settled_task_runs(state.state_details.flow_run_id, len(STAGES))}
    assert runs["freeze"].state.is_failed()
    # stages that did not run are not successes: CANCELLED (grey in the UI), never COMPLETED (green)
    for stage in ("parse", "construct", "optimize", "verify"):
        assert runs[stage].state.name == "Skipped" and runs[stage].state.type.value == "CANCELLED"
    (art,) = [a for a in _artifacts("tf2trt-broken-summary") if a.flow_run_id == state.state_details.flow_run_id]
    assert art.description == "Build summary of broken: FAILED" and "**FAILED**" in art.data
    assert "skipped (did not run)" in art.data and "Not checked" in art.data


def test_build_all_fans_out_with_a_bounded_runner(prefect_api, use_fake, configs, artifacts):
    from prefect.task_runners import ThreadPoolTaskRunner

    from pipeline import flows

    paths = [str(configs.write(name=f"c{i}", model=f"m{i}.keras", model_bytes=f"model {i}".encode()))
             for i in range(4)]
    runner = ThreadPoolTaskRunner(max_workers=2)
    state = flows.build_all.with_options(task_runner=runner)(paths, str(artifacts), return_state=True)
    summaries = state.result()
    assert [s["name"] for s in summaries] == ["c0", "c1", "c2", "c3"]
    assert _flow_run_name(state.state_details.flow_run_id) == "build-c0+c1+c2+1-more"  # named after its configs
    assert all(s["ok"] for s in summaries)
    assert all([x["status"] for x in s["stages"]] == ["built"] * 5 for s in summaries)
    summaries = flows.build_all.with_options(task_runner=runner)(paths, str(artifacts))
    assert all([x["status"] for x in s["stages"]] == ["cached"] * 5 for s in summaries)


@pytest.mark.slow
def test_build_all_on_a_local_dask_cluster(prefect_api, configs, artifacts, monkeypatch, tmp_path):
    """Stage tasks run in Dask worker processes (as on other hosts), sharing the artifact store."""
    from distributed import LocalCluster

    from pipeline import flows

    log = tmp_path / "calls.log"
    monkeypatch.setenv("TF2TRT_BACKEND", "fakes:FakeBackend")
    monkeypatch.setenv("TF2TRT_FAKE_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE.parents[1]), str(HERE)]))
    flows.set_backend(None)
    paths = [str(configs.write(name=f"d{i}", model=f"m{i}.keras", model_bytes=f"dask {i}".encode()))
             for i in range(2)]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        runner = flows.dask_runner(cluster.scheduler_address)
        summaries = flows.build_all.with_options(task_runner=runner)(paths, str(artifacts))
    assert all(s["ok"] for s in summaries), summaries
    pids = {line.split()[0] for line in log.read_text().splitlines()}
    assert str(os.getpid()) not in pids  # the work ran in the Dask workers
    assert len(log.read_text().splitlines()) == 10
