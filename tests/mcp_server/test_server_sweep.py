"""Whole sweeps through the tools: digits-cnn over MCP, a registered model over HTTP, one on a real Ray runtime."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from mcp import Client

from mcp_server.http_app import create_app
from mcp_server.mcp_app import build_mcp_server

GOAL = "under 40 KB with less than 1% accuracy loss"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.slow
async def test_sweep_over_mcp_runs_to_a_recommended_model_on_digits_cnn(services: Any) -> None:
    async with Client(build_mcp_server(services)) as c:
        started = await c.call_tool("run_sweep", {"model": "digits-cnn", "goal": GOAL})
        job_id = started.structured_content["job_id"]
        assert started.structured_content["state"] in ("queued", "running")

        states = []
        for _ in range(600):
            job = (await c.call_tool("get_job", {"job_id": job_id})).structured_content
            states.append(job["state"])
            if job["state"] not in ("queued", "running"):
                break
            await anyio.sleep(0.2)
        assert job["state"] == "succeeded", job
        assert job["trials_finished"] >= 1 and job["trials"][0]["ok"] is True
        assert job["progress"]["phase"] == "finished"

        result = await c.call_tool("get_pareto_report", {"job_id": job_id})
        report = result.structured_content["report"]
        assert report["recommended"] and report["goal"]["max_size_mb"] == 0.04
        best = next(x for x in report["candidates"] if x["id"] == report["recommended"])
        assert best["metrics"]["size_bytes"] <= 40_000 and best["metrics"]["accuracy_drop_pct"] <= 1.0
        assert result.content[0].text.startswith(
            f"{report['evaluations']} of {report['grid_size']} candidates"
        )

        artifact = result.structured_content["best_artifact"]
        got = (await c.call_tool("get_artifact", {"artifact_id": artifact})).structured_content
        blob = base64.b64decode(got["content_base64"])
        assert (
            hashlib.sha256(blob).hexdigest() == got["sha256"] and len(blob) == best["metrics"]["size_bytes"]
        )

        other = await c.call_tool("recommend", {"job_id": job_id, "goal": "the smallest model"})
        # re-ranked for size: the smallest measured candidate (onnxruntime's one-liners are candidates too, so it
        # need not be the balanced answer above)
        smallest = min(
            (x for x in report["candidates"] if x["metrics"]),
            key=lambda x: (x["metrics"]["size_bytes"], x["id"]),
        )
        assert other.structured_content["recommendation"]["recommended"] == smallest["id"]
        chart = await c.read_resource(f"quanttaas://jobs/{job_id}/chart")
        assert "vega" in chart.contents[0].text.lower()


@pytest.mark.slow
def test_sweep_over_http_on_a_registered_model_and_data(
    client: Any, tiny_onnx: Path, tiny_npz: Path, wait_job: Any
) -> None:
    model = client.post("/models", files={"file": ("tiny.onnx", tiny_onnx.read_bytes())}).json()["model"][
        "id"
    ]
    data = client.post("/data", files={"file": ("eval.npz", tiny_npz.read_bytes())}).json()["data"]["id"]
    r = client.post("/tools/run_sweep", json={"model": model, "goal": "as small as possible", "data": data})
    assert r.status_code == 200, r.text
    job = wait_job(client, r.json()["result"]["job_id"])
    assert job["state"] == "succeeded", job
    report = client.get(f"/jobs/{job['job_id']}/report").json()
    assert report["report"]["model"] == model and report["candidate_artifacts"]
    artifact_id = next(iter(report["candidate_artifacts"].values()))
    download = client.get(f"/artifacts/{artifact_id}")
    assert (
        download.status_code == 200 and download.content[:2] == b"\x08\x08"
    )  # ONNX protobuf: ir_version tag
    listed = client.get("/jobs").json()["jobs"]
    assert [j["job_id"] for j in listed] == [job["job_id"]]


@pytest.fixture
def ray_client(make_settings: Any) -> Iterator[Any]:
    from optimizer.search.runtime import shutdown_ray

    app = create_app(make_settings(sweep_executor="ray"))
    try:
        with TestClient(app, base_url="http://127.0.0.1") as c:
            yield c
    finally:
        shutdown_ray()


@pytest.mark.slow
def test_sweep_on_a_real_ray_runtime_succeeds(ray_client: Any, wait_job: Any) -> None:
    r = ray_client.post("/tools/run_sweep", json={"model": "digits-cnn", "goal": GOAL})
    job = wait_job(ray_client, r.json()["result"]["job_id"], timeout=300)
    assert job["state"] == "succeeded", job
    import ray

    assert ray.is_initialized()  # the trials really ran as Ray tasks
    assert ray_client.get(f"/jobs/{job['job_id']}/report").json()["report"]["recommended"]


@pytest.mark.slow
def test_sweep_artifacts_published_to_an_fsspec_url(make_settings: Any, wait_job: Any) -> None:
    app = create_app(make_settings(artifact_url="memory://quanttaas-test/artifacts"))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        job = wait_job(
            c,
            c.post("/tools/run_sweep", json={"model": "digits-cnn", "goal": GOAL}).json()["result"]["job_id"],
        )
        assert job["state"] == "succeeded"
        report = c.post("/tools/get_pareto_report", json={"job_id": job["job_id"]}).json()["result"]
        best = report["best_artifact"]
        assert best == f"{job['job_id']}/best.onnx"
        served = c.get(f"/artifacts/{best}")
        assert served.status_code == 200
        import fsspec

        fs = fsspec.filesystem("memory")
        assert fs.cat(f"/quanttaas-test/artifacts/{best}") == served.content


def test_follow_up_goal_is_merged_on_the_server_and_reaches_the_sweep_as_fields(
    client: Any, tiny_sweep: Any, wait_job: Any
) -> None:
    """parse_goal(text, prior) merges a follow-up server-side; run_sweep takes the structured goal as it is, and
    the job and its report carry exactly those fields (nothing is written back into English and read again)."""
    first = client.post("/tools/parse_goal", json={"text": "as small as possible, at most 1% accuracy loss"})
    prior = first.json()["result"]["goal"]
    second = client.post(
        "/tools/parse_goal",
        json={"text": "I can accept up to 5% accuracy loss, and no pruning", "prior": prior},
    )
    assert second.status_code == 200, second.text
    merged = second.json()["result"]["goal"]
    assert merged["objective"] == "size" and merged["max_accuracy_drop_pct"] == 5.0
    assert merged["methods_forbidden"] == ["prune"]
    assert second.json()["result"]["runnable"] is True

    args = {**tiny_sweep(client), "goal": merged}
    started = client.post("/tools/run_sweep", json=args)
    assert started.status_code == 200, started.text
    job = wait_job(client, started.json()["result"]["job_id"])
    assert job["state"] == "succeeded", job
    assert job["goal_fields"] == merged
    report = client.get(f"/jobs/{job['job_id']}/report").json()["report"]
    assert report["goal"] == merged
    # the misses were computed once, in the library, for every candidate
    assert set(report["misses"]) == {c["id"] for c in report["candidates"]}
    assert all(
        report["misses"][cid] == [] for cid in ([report["recommended"]] if report["recommended"] else [])
    )


def test_run_sweep_refuses_a_structured_goal_with_nothing_to_aim_at(client: Any, tiny_sweep: Any) -> None:
    args = {**tiny_sweep(client), "goal": {"methods_forbidden": ["prune"]}}
    r = client.post("/tools/run_sweep", json=args)
    assert r.status_code == 400 and r.json()["error"]["code"] == "goal_invalid"
