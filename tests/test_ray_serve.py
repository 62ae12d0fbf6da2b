"""`pt2kit serve --ray`: the serve app on a real local Ray Serve (2 CPUs, 127.0.0.1), replicated, checked against eager.

The fast tests check options, flags and the written config without Ray running. The `ray` tests start Ray: first
the CLI in a child process (its own local Ray, SIGTERM, exit 0), then one module-scoped Ray with 2 CPUs that runs
two replicas, loses one, and deploys a written config through Ray's own `serve run`. About two minutes here.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
import yaml
from torch.utils import _pytree as pytree

import pt2kit
import ray  # the ray extra is part of the test extra: these tests run in CI, never skip
from ray import serve
from ray.serve import Application
from ray.serve.schema import ServeDeploySchema
from serve_support import CASES, export, free_port, tensor_input, wait_ready  # noqa: E402  (tests/ is on sys.path)

from pt2kit.errors import UsageError
from pt2kit.serve import ServeOptions
from pt2kit.serve.ray_app import DEPLOYMENT_NAME, RayOptions, app_builder, check_artifacts, ray_application
from pt2kit.serve.ray_config import ray_config, write_ray_config
from pt2kit.serve.ray_run import THROUGHPUT_ENV, deploy_on_ray, throughput_env

APP = "pt2kit"


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray")
    return {
        "linear": export("linear_relu", folder / "linear.pt2", "input:0=batch[1,64]"),
        "pair": export("two_inputs_dict_out", folder / "pair.pt2", "x:0=batch[1,64],x:1=seq[2,16],mask:0=batch,mask:1=seq"),
    }


@pytest.fixture(scope="module")
def eager():
    return {"linear": pt2kit.load_target(f"{CASES / 'linear_relu'}.py:model").module,
            "pair": pt2kit.load_target(f"{CASES / 'two_inputs_dict_out'}.py:model").module}


def eager_outputs(module, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        result = module(*inputs.values())
    return {"output" + pytree.keystr(path): value for path, value in pytree.tree_flatten_with_path(result)[0]}


def post(url: str, model: str, inputs: dict[str, torch.Tensor], timeout: float = 60) -> httpx.Response:
    entries = [tensor_input(name, tensor)[0] for name, tensor in inputs.items()]
    return httpx.post(f"{url}/v2/models/{model}/infer", json={"inputs": entries}, timeout=timeout)


def check_against_eager(response: httpx.Response, module, inputs: dict[str, torch.Tensor]) -> None:
    assert response.status_code == 200, response.text
    got = {o["name"]: torch.tensor(o["data"]).reshape(o["shape"]) for o in response.json()["outputs"]}
    want = eager_outputs(module, inputs)
    assert got.keys() == want.keys()
    for name, value in want.items():
        torch.testing.assert_close(got[name], value.float(), rtol=1e-4, atol=1e-5, msg=name)


def request_inputs(model: str, i: int) -> dict[str, torch.Tensor]:
    """Varied requests: batch 1 for `linear` (so batched rows mean batched requests), batch and seq varying for `pair`."""
    g = torch.Generator().manual_seed(i)
    if model == "linear":
        return {"input": torch.randn(1, 16, generator=g)}
    batch, seq = 1 + i % 3, 3 + i % 2  # two sequence lengths: groups that must not share a model call
    return {"x": torch.randn(batch, seq, 6, generator=g), "mask": torch.ones(batch, seq)}


# ---- without Ray running ----

def test_options_are_checked_before_ray_starts(programs, tmp_path):
    with pytest.raises(UsageError, match="--autoscale"):
        RayOptions(autoscale=(3, 2)).check()
    with pytest.raises(UsageError, match="--gpus-per-replica"):
        RayOptions(gpus_per_replica=1.5).check()
    with pytest.raises(UsageError, match="runs on the CPU"):
        check_artifacts([programs["linear"]], ServeOptions(), RayOptions(gpus_per_replica=0.5))
    with pytest.raises(UsageError, match="runs on cpu, not on `--device cuda`"):
        check_artifacts([programs["linear"]], ServeOptions(device="cuda"), RayOptions(gpus_per_replica=1))
    with pytest.raises(UsageError, match="would both be served as"):
        check_artifacts([programs["linear"], programs["linear"]], ServeOptions(), RayOptions())
    with pytest.raises(UsageError, match="unknown key.*`max_batch`"):
        app_builder({"artifacts": [str(programs["linear"])], "max_batch": 4})
    with pytest.raises(UsageError, match="must list `artifacts`"):
        app_builder({})


def test_local_ray_runs_serve_throughput_optimized_unless_the_environment_says_otherwise():
    """What `connect_ray` adds to the environment a local Ray (controller, proxy, replicas) inherits."""
    from ray.serve._private import constants

    assert hasattr(constants, "RAY_SERVE_THROUGHPUT_OPTIMIZED")  # Ray 2.60 has the mode: `--ray` turns it on
    assert throughput_env({}) == THROUGHPUT_ENV == {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0"}
    assert throughput_env({"RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"}) == {}  # the user's opt-out wins
    assert throughput_env({"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1"}) == {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}


def test_written_config_is_a_valid_serve_config(programs, tmp_path):
    path = tmp_path / "serve.yaml"
    written = write_ray_config(path, [programs["linear"]], ServeOptions(max_batch_size=8, max_queue_delay_ms=2),
                               RayOptions(autoscale=(1, 4), gpus_per_replica=0.0))
    config = yaml.safe_load(path.read_text())
    ServeDeploySchema.model_validate(config)
    app = config["applications"][0]
    assert app["import_path"] == "pt2kit.serve.ray_app:app_builder"
    assert app["args"]["artifacts"] == [str(Path(programs["linear"]).resolve())]
    assert (app["args"]["max_batch_size"], app["args"]["max_queue_delay_ms"]) == (8, 2.0)
    deployment = app["deployments"][0]
    assert deployment["name"] == DEPLOYMENT_NAME and "num_replicas" not in deployment
    assert deployment["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8}
    assert deployment["max_ongoing_requests"] == 16  # a batch runs while the next fills
    assert written.to_json()["deployment"] == deployment and "serve deploy" in str(written)
    # a path not on this machine is written as given, for the cluster's nodes; so is it bound for a remote cluster
    assert ray_config(["/models/elsewhere.aoti.pt2"])["applications"][0]["args"]["artifacts"] == ["/models/elsewhere.aoti.pt2"]
    assert isinstance(ray_application(["/models/elsewhere.aoti.pt2"], missing_ok=True), Application)
    with pytest.raises(UsageError, match="does not exist"):
        ray_application(["/models/elsewhere.aoti.pt2"])


@pytest.mark.parametrize("flags, needle", [
    (["--num-replicas", "2"], "add `--ray`"),
    (["--ray", "--num-replicas", "2", "--autoscale", "1,2"], "not both"),
    (["--ray", "--autoscale", "two"], "MIN,MAX"),
    (["--ray", "--write-config", "x.yaml"], "drop `--ray`"),
    (["--write-config", "x.json"], "*.yaml"),
    (["--ray", "--gpus-per-replica", "0.5"], "runs on the CPU"),
    (["--ray", "--ray-address", f"127.0.0.1:{free_port()}"], "nothing answers at"),  # not minutes of Ray's retries
    (["--write-config", "no/such/folder/serve.yaml"], "does not exist"),
])
def test_cli_ray_flags_fail_in_one_line(cli, programs, flags, needle):
    from conftest import check_one_line_error

    check_one_line_error(cli("serve", programs["linear"], *flags), needle)


# ---- on a real local Ray ----

@pytest.mark.slow
@pytest.mark.ray
def test_cli_serves_on_a_local_ray_and_stops_on_sigterm(small_aoti_package, eager):
    """An AOTInductor package (the session's, built once) in the replicas of a local Ray the command starts."""
    port = free_port()
    # three replicas of 1 CPU on a machine of 2 cores (CI's): the local Ray must count enough CPUs to place them all
    proc = subprocess.Popen([sys.executable, "-m", "pt2kit", "serve", str(small_aoti_package), "--ray", "--port", str(port),
                             "--num-replicas", "3", "--max-batch-size", "4", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, timeout=240, proc=proc)  # a local Ray starts in 20-30 s on 2 busy cores
        inputs = {"input": torch.randn(3, 16)}
        check_against_eager(post(url, "linear", inputs), eager["linear"], inputs)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    said = " ".join(err.split())  # progress lines wrap
    assert "with 3 replica(s) on a local Ray on 127.0.0.1" in said and "stopped" in said and "Traceback" not in err


@pytest.fixture(scope="module")
def local_ray():
    """Ray with 2 CPUs on 127.0.0.1, no dashboard, Serve's proxy on 127.0.0.1:PORT; shut down at the end.

    Yields (Serve's port, the port where Ray exports its metrics, reported every second)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reports to the internet from a test
    metrics_port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             _metrics_export_port=metrics_port, _system_config={"metrics_report_interval_ms": 1000})
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield port, metrics_port
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def deployed(local_ray, programs):
    options = ServeOptions(port=local_ray[0], max_batch_size=8, max_queue_delay_ms=20, threads=1)
    return deploy_on_ray([programs["linear"], programs["pair"]], options, RayOptions(num_replicas=2, cpus_per_replica=0.5))


def replica_names() -> list[str]:
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["name"].startswith(f"SERVE_REPLICA::{APP}#{DEPLOYMENT_NAME}"))


@pytest.mark.slow
@pytest.mark.ray
def test_two_replicas_answer_concurrent_requests_like_eager(local_ray, deployed, eager):
    assert serve.status().applications[APP].deployments[DEPLOYMENT_NAME].replica_states == {"RUNNING": 2}
    jobs = [("linear" if i % 2 else "pair", i) for i in range(48)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda job: post(deployed.url, job[0], request_inputs(*job)), jobs))
    for (model, i), response in zip(jobs, responses):
        check_against_eager(response, eager[model], request_inputs(model, i))
    # the same metrics as `pt2kit serve`, from whichever replica answers
    metrics = httpx.get(f"{deployed.url}/metrics", timeout=30).text
    assert 'pt2kit_requests_total{code="200",model="linear"}' in metrics and "pt2kit_batch_size_bucket" in metrics
    # and in Ray's own export, beside ray_serve_*, tagged per replica: their sum counts every answer
    deadline, counted = time.monotonic() + 60, None
    while counted != 24:
        assert time.monotonic() < deadline, f"Ray exported {counted} linear answers, not 24"
        time.sleep(1)
        exported = httpx.get(f"http://127.0.0.1:{local_ray[1]}/metrics", timeout=30).text
        counted = sum(float(line.rsplit(" ", 1)[1]) for line in exported.splitlines()
                      if line.startswith("ray_pt2kit_requests_total{") and 'model="linear"' in line and 'code="200"' in line)
    assert "ray_serve_num_http_requests" in exported and "ray_pt2kit_batch_size_bucket" in exported


@pytest.mark.slow
@pytest.mark.ray
def test_same_checks_and_errors_as_pt2kit_serve(deployed, eager):
    url = deployed.url
    # binary tensor data (its header crosses Ray's proxy) in, JSON out
    inputs = {"input": torch.randn(2, 16)}
    entry, raw = tensor_input("input", inputs["input"], binary=True)
    head = json.dumps({"inputs": [entry]}).encode()
    binary = httpx.post(f"{url}/v2/models/linear/infer", content=head + raw, timeout=60,
                        headers={"Inference-Header-Content-Length": str(len(head))})
    check_against_eager(binary, eager["linear"], inputs)
    assert httpx.get(f"{url}/v2/health/ready", timeout=30).status_code == 200
    assert httpx.get(f"{url}/v2/models/pair", timeout=30).json()["inputs"][0] == {"name": "x", "datatype": "FP32", "shape": [-1, -1, 6]}
    wrong = post(url, "linear", {"input": torch.randn(2, 15)})
    assert wrong.status_code == 400 and "dim 1" in wrong.json()["error"] and "\n" not in wrong.text.strip()
    unknown = post(url, "nope", {"input": torch.randn(1, 16)})
    assert unknown.status_code == 404 and "linear" in unknown.json()["error"]
    not_json = httpx.post(f"{url}/v2/models/linear/infer", content=b"{", timeout=30)
    assert not_json.status_code == 400 and set(not_json.json()) == {"error"}


@pytest.mark.slow
@pytest.mark.ray
def test_requests_keep_being_answered_when_a_replica_dies(deployed, eager):
    before = replica_names()
    assert len(before) == 2
    ray.kill(ray.get_actor(before[0], namespace="serve"), no_restart=False)
    answered, seen, deadline = 0, [], time.monotonic() + 150
    while True:  # requests go on while the controller notices the death and starts a replacement
        inputs = request_inputs("linear", answered)
        check_against_eager(post(deployed.url, "linear", inputs), eager["linear"], inputs)
        answered += 1
        states = serve.status().applications[APP].deployments[DEPLOYMENT_NAME].replica_states
        names = replica_names()
        if not seen or seen[-1] != (states, names):
            seen.append((states, names))
        if answered >= 20 and states == {"RUNNING": 2} and len(names) == 2 and before[0] not in names:
            break
        assert time.monotonic() < deadline, f"the killed replica was not replaced: {seen}"
    # requests were answered across the death: a moment with a replica missing, by its state or its actor's absence
    # (the controller can report RUNNING 2 throughout while the replacement's actor is not yet up)
    assert any(s != {"RUNNING": 2} or len(n) < 2 for s, n in seen), seen


@pytest.mark.slow
@pytest.mark.ray
def test_written_config_deploys_through_ray_serve_run(local_ray, programs, eager, tmp_path, deployed):
    serve.delete(APP)  # a config deploy replaces the applications deployed from Python
    path = tmp_path / "serve.yaml"
    code = subprocess.run([sys.executable, "-m", "pt2kit", "serve", str(programs["pair"]), "--write-config", str(path),
                           "--num-replicas", "1", "--port", str(local_ray[0]), "--max-batch-size", "4", "-q"], timeout=120).returncode
    assert code == 0
    serve_cli = Path(sys.executable).with_name("serve")
    address = ray.get_runtime_context().gcs_address
    run = subprocess.run([str(serve_cli), "run", str(path), "--address", address, "--non-blocking"],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    deadline = time.monotonic() + 150
    while (status := serve.status().applications.get(APP)) is None or status.status != "RUNNING":
        assert time.monotonic() < deadline and (status is None or status.status != "DEPLOY_FAILED"), status
        time.sleep(1)
    assert status.deployments[DEPLOYMENT_NAME].replica_states == {"RUNNING": 1}
    for i in range(4):
        inputs = request_inputs("pair", i)
        check_against_eager(post(deployed.url, "pair", inputs), eager["pair"], inputs)
    assert json.loads(httpx.get(f"{deployed.url}/v2/models/linear", timeout=30).text)["error"].startswith("unknown model")
