"""`pt2kit serve --ray`: deploy the application on a Ray cluster (or a local Ray on 127.0.0.1) and hold it.

`deploy_on_ray` connects (`ray.init(address=...)`), or starts a local Ray bound to 127.0.0.1 with no dashboard when
no address is given, starts Ray Serve's HTTP proxy on `--host`/`--port`, runs the application and waits until it is
RUNNING (every replica loaded and warmed). `serve_on_ray` then holds it until SIGTERM or Ctrl-C, deletes the
application (Ray drains its replicas) and, for a local Ray, shuts Ray down, like Ray's own `serve run`.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any, Sequence

from pt2kit import progress
from pt2kit.errors import UsageError
from pt2kit.serve.ray_app import RayOptions, ray_application
from pt2kit.serve.server import ServeOptions, bind_socket


@dataclass(frozen=True)
class RayDeployment:
    """An application running on Ray Serve: where it answers, and on which Ray."""

    app_name: str
    url: str
    replicas: str
    ray_address: str
    local_ray: bool

    def __str__(self) -> str:
        where = "a local Ray on 127.0.0.1" if self.local_ray else f"the Ray cluster at {self.ray_address}"
        return f"serving `{self.app_name}` on {self.url} with {self.replicas} on {where}"

    def to_json(self) -> dict[str, Any]:
        return {"app_name": self.app_name, "url": self.url, "replicas": self.replicas,
                "ray_address": self.ray_address, "local_ray": self.local_ray}


# Ray Serve's throughput-optimized mode (Ray 2.60 reads it at import in Serve's controller, proxy and replicas):
# user code and the router on the replica's own event loop, request-path logs buffered and not copied to stderr,
# gRPC between proxy and replicas, the garbage collector frozen after start-up. Its direct ingress (replicas
# listening on ports 30000+ without the proxy, and a drain of at least 30 s on stop) is left off: `--port` stays the one address.
THROUGHPUT_ENV = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0"}


def throughput_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables of `THROUGHPUT_ENV` to add to `environ` (default `os.environ`) before a local Ray starts.

    Empty where the installed Ray has no throughput-optimized mode, or where the environment already sets
    `RAY_SERVE_THROUGHPUT_OPTIMIZED` (`=0` opts out); a variable the environment already sets is never replaced.
    """
    from ray.serve._private import constants

    environ = os.environ if environ is None else environ
    if not hasattr(constants, "RAY_SERVE_THROUGHPUT_OPTIMIZED") or "RAY_SERVE_THROUGHPUT_OPTIMIZED" in environ:
        return {}
    return {k: v for k, v in THROUGHPUT_ENV.items() if k not in environ}


def connect_ray(address: str | None, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at `address`, or start a local one bound to 127.0.0.1 (no dashboard); True if started.

    A local Ray's processes inherit this process's environment: `throughput_env()` is added to it first, so Serve's
    controller, proxy and replicas run throughput-optimized. A Ray already initialized in this process is used as
    it is (returns False).
    """
    import ray

    if ray.is_initialized():
        return False
    if address is None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # this machine may not reach the internet; do not try
        os.environ.update(throughput_env())
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, logging_level=logging.WARNING)
        return True
    _check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise UsageError(f"cannot join the Ray cluster at `{address}` ({str(exc).splitlines()[0][:200]}); check `--ray-address` "
                         "(`ray://HEAD:10001` from outside the cluster, `auto` on one of its nodes)") from None
    return False


def _check_reachable(address: str) -> None:
    """Fail fast on a `HOST:PORT` nobody listens on (Ray itself retries for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # `auto`, or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise UsageError(f"nothing answers at `{address}` ({exc.strerror or exc}); check `--ray-address`: the head node's "
                         "`HOST:6379` on a cluster node, `ray://HOST:10001` from outside, or `auto` on a node") from None


def local_cpus(ray_options: RayOptions) -> int:
    """CPUs to give a local Ray: this machine's cores, or more so that every replica asked for can be placed.

    Ray's CPUs are a count for placement, not a limit; a local Ray short of them would wait forever for the last
    replicas. Replicas beyond the cores share them (said on stderr).
    """
    cores = os.cpu_count() or 1
    replicas = ray_options.autoscale[1] if ray_options.autoscale else ray_options.num_replicas
    need = math.ceil(replicas * ray_options.cpus_per_replica)
    if need > cores:
        progress.info(f"{replicas} replicas of {ray_options.cpus_per_replica:g} CPU on {cores} cores: the local Ray counts {need} "
                      "CPUs so that all can be placed; they share the cores")
    return max(cores, need)


def deploy_on_ray(artifacts: Sequence[str | os.PathLike], options: ServeOptions = ServeOptions(),
                  ray_options: RayOptions = RayOptions(), names: Sequence[str] | None = None) -> RayDeployment:
    """Deploy `artifacts` on Ray Serve and return once every replica is running.

    Raises:
        UsageError: bad options or artifacts (checked before Ray starts), the port is taken, the cluster cannot be
            joined, or Ray Serve could not deploy the application (its message, in one line).

    Example:
        >>> deployment = deploy_on_ray(["out/mlp.aoti.pt2"], ServeOptions(port=8000), RayOptions(num_replicas=2))
        >>> httpx.get(f"{deployment.url}/v2/health/ready"); stop_on_ray(deployment)
    """
    app = _prepare(artifacts, options, ray_options, names)
    local = connect_ray(ray_options.address, local_cpus(ray_options) if ray_options.address is None else None)
    try:
        return _run(app, options, ray_options, local)
    except BaseException:
        if local:  # leave no Ray behind that this call started
            _stop(ray_options.app_name, local)
        raise


def _prepare(artifacts, options: ServeOptions, ray_options: RayOptions, names):
    import ray

    # checks everything it can before Ray starts; on a cluster the artifacts may be only on its nodes
    app = ray_application(artifacts, options, ray_options, names, missing_ok=ray_options.address is not None)
    if ray_options.address is None and not ray.is_initialized():
        bind_socket(options.host, options.port).close()  # a taken port fails now, in one line, not inside Ray
    return app


def _run(app, options: ServeOptions, ray_options: RayOptions, local: bool) -> RayDeployment:
    import ray
    from ray import serve

    if local and ray_options.gpus_per_replica > 0:  # a local Ray has no autoscaler to add GPUs: say so, do not wait
        replicas = max(1, ray_options.autoscale[0]) if ray_options.autoscale else ray_options.num_replicas
        have, need = ray.cluster_resources().get("GPU", 0), replicas * ray_options.gpus_per_replica
        if have < need:
            raise UsageError(f"{replicas} replica(s) x `--gpus-per-replica {ray_options.gpus_per_replica:g}` need {need:g} GPU(s), "
                             f"this machine has {have:g}; use fewer replicas or a smaller fraction, or join a cluster with `--ray-address`")
    serve.start(http_options={"host": options.host, "port": options.port})
    with progress.stage(f"deploy `{ray_options.app_name}` on Ray Serve"):
        try:
            serve.run(app, name=ray_options.app_name, route_prefix=ray_options.route_prefix, blocking=False)
        except RuntimeError as exc:
            message = " ".join(str(exc).split())
            raise UsageError(f"Ray Serve could not deploy `{ray_options.app_name}`: {message[-600:]}") from None
    scale = ray_options.autoscale
    replicas = f"{scale[0]}-{scale[1]} replicas (autoscaled)" if scale else f"{ray_options.num_replicas} replica(s)"
    host = "127.0.0.1" if options.host in ("0.0.0.0", "::") else options.host
    return RayDeployment(ray_options.app_name, f"http://{host}:{options.port}{ray_options.route_prefix.rstrip('/')}",
                         replicas, ray.get_runtime_context().gcs_address, local)


def stop_on_ray(deployment: RayDeployment) -> None:
    """Delete the application (Ray lets its replicas finish what they hold); shut down a Ray this process started."""
    _stop(deployment.app_name, deployment.local_ray)


def _stop(app_name: str, local: bool) -> None:
    import ray
    from ray import serve
    from ray.serve.exceptions import RayServeException

    try:
        serve.delete(app_name)
    except RayServeException:  # Serve never started here: nothing to delete
        pass
    finally:
        if local:
            serve.shutdown()
            ray.shutdown()


def serve_on_ray(artifacts: Sequence[str | os.PathLike], options: ServeOptions = ServeOptions(),
                 ray_options: RayOptions = RayOptions(), names: Sequence[str] | None = None) -> int:
    """Deploy, hold until SIGTERM or Ctrl-C, then stop; returns 0.

    A signal during the deploy stops right after it; a second one aborts it (replicas that cannot be placed wait
    forever) with `KeyboardInterrupt`, after the same clean-up.
    """
    app = _prepare(artifacts, options, ray_options, names)
    local = connect_ray(ray_options.address, local_cpus(ray_options) if ray_options.address is None else None)
    stop, deployed = threading.Event(), False

    def on_signal(sig, frame):
        if deployed or not stop.is_set():
            stop.set()  # stop once the deploy returns (the app may already answer: let it finish)
            if not deployed:
                progress.info("stopping once the deploy is done; signal again to abort it")
            return
        raise KeyboardInterrupt  # a second signal while replicas still start (or cannot be placed): abort

    # installed after ray.init, which puts a fatal-signal handler on SIGTERM
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        deployment = _run(app, options, ray_options, local)
        deployed = True
        progress.info(f"{deployment}; OpenAPI docs at {deployment.url}/docs; SIGTERM or Ctrl-C stops")
        while not stop.wait(0.5):
            pass
        progress.info(f"stopping `{ray_options.app_name}`: replicas answer what they hold, then exit")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop(ray_options.app_name, local)
    progress.info("stopped")
    return 0
