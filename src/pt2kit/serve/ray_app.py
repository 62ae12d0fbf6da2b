"""The `pt2kit serve` app as a Ray Serve application: the same routes, checks and metrics, replicated by Ray.

Each replica of the `PT2KitServer` deployment loads the artifacts with `load_services`, warms them up before Ray
routes a request to it, and serves the FastAPI app of `create_app` (wrapped with `@serve.ingress`, built in the
replica) with a `RayBatchBackend`, which batches through Ray Serve's own `@serve.batch`. Ray runs the replicas,
restarts a dead one, autoscales, and gives each a share of a GPU; pt2kit manages no cluster.

- `ray_application(artifacts, options, ray_options)` returns the application, for `serve.run` or composition.
- `app_builder(args)` is the import path of a Ray Serve config (`pt2kit.serve.ray_app:app_builder`): its `args`
  are `artifacts`, optional `names`, and the replica options of `ServeOptions` (`max_batch_size`, ...).
- `deployment_options(options, ray_options)` is what `.options()` and the config's `deployments:` both say.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import torch
from ray import serve
from ray.serve import Application

from pt2kit import progress
from pt2kit.artifact.package import ArtifactKind, artifact_kind, read_manifest
from pt2kit.errors import ArtifactError, UsageError
from pt2kit.serve.app import create_app
from pt2kit.serve.ray_backend import RayBatchBackend, RayServeMetrics
from pt2kit.serve.server import ServeOptions
from pt2kit.serve.service import load_services, model_names

DEPLOYMENT_NAME = "PT2KitServer"
BUILDER_IMPORT_PATH = "pt2kit.serve.ray_app:app_builder"
# ServeOptions that a replica uses; host and port belong to Ray Serve's HTTP proxy (`http_options`)
REPLICA_OPTIONS = tuple(f.name for f in fields(ServeOptions) if f.name not in ("host", "port"))


@dataclass(frozen=True)
class RayOptions:
    """How Ray runs the replicas (see `docs/scale-out.md`).

    Attributes:
        num_replicas: a fixed number of replicas (ignored with `autoscale`).
        autoscale: (min, max) replicas; Ray adds one when replicas hold more than `max_batch_size` requests each.
        address: the Ray cluster (`ray://head:10001`, `auto`); None starts a local Ray bound to 127.0.0.1.
        gpus_per_replica: GPUs each replica reserves; a fraction (0.5) packs replicas onto one GPU.
        cpus_per_replica: CPUs each replica reserves.
        app_name, route_prefix: the Ray Serve application's name and where its routes live.
    """

    num_replicas: int = 1
    autoscale: tuple[int, int] | None = None
    address: str | None = None
    gpus_per_replica: float = 0.0
    cpus_per_replica: float = 1.0
    app_name: str = "pt2kit"
    route_prefix: str = "/"

    def check(self) -> None:
        """Raise `UsageError` naming the first option out of range."""
        if self.num_replicas < 1:
            raise UsageError(f"`--num-replicas` must be at least 1, got {self.num_replicas}; use `--autoscale 0,N` to scale to zero")
        if self.autoscale is not None:
            low, high = self.autoscale
            if low < 0 or high < max(low, 1):
                raise UsageError(f"`--autoscale MIN,MAX` needs 0 <= MIN <= MAX and MAX >= 1, got `{low},{high}`; e.g. `--autoscale 1,4`")
        gpus = self.gpus_per_replica
        if gpus < 0 or (gpus > 1 and gpus != int(gpus)):
            raise UsageError(f"`--gpus-per-replica` must be a fraction up to 1 or a whole number of GPUs, got {gpus}; e.g. 0.5 or 2")
        if self.cpus_per_replica < 0:
            raise UsageError(f"CPUs per replica must be at least 0, got {self.cpus_per_replica}")
        if not self.route_prefix.startswith("/"):
            raise UsageError(f"the route prefix must start with `/`, got `{self.route_prefix}`")


@serve.deployment(name=DEPLOYMENT_NAME)
@serve.ingress()
class PT2KitServer:
    """One replica: loads and warms the artifacts, then serves the `pt2kit serve` app built by `create_app`.

    Args:
        artifacts: paths on the replica's node.
        names: the models' names in URLs (None: each file's name).
        options: the `REPLICA_OPTIONS` of a `ServeOptions`, as a dict (what a Ray Serve config's `args` hold).
    """

    def __init__(self, artifacts: list[str], names: list[str] | None, options: dict[str, Any]):
        self.options = ServeOptions(**options)
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        self.services = load_services(artifacts, names=names, device=self.options.device,
                                      max_batch_size=self.options.max_batch_size, load_options=self.options.load_options)
        for service in self.services:
            progress.info(service.describe())
            # warm up here, not in the app's start-up: Ray routes to a replica once its constructor returns
            if self.options.warm_up:
                service.try_warm_up()  # a failure leaves it not ready: 503 saying why, as without Ray
        self.metrics = RayServeMetrics([s.name for s in self.services])
        self.backend = RayBatchBackend(self.services, max_queue_delay_ms=self.options.max_queue_delay_ms, metrics=self.metrics)

    def __serve_build_asgi_app__(self):
        return create_app(self.services, backend=self.backend, metrics=self.metrics,
                          max_body_bytes=int(self.options.max_body_mb * 1024 * 1024), warm_up=False)


def deployment_options(options: ServeOptions, ray_options: RayOptions) -> dict[str, Any]:
    """The `PT2KitServer` deployment's Ray Serve options, as `.options()` and a config's `deployments:` take them.

    A replica takes up to twice `max_batch_size` requests at once (one batch runs while the next fills); more
    wait at Ray's proxy, up to `max_queue`, then get 503. Autoscaling aims at `max_batch_size` requests per replica.
    """
    result: dict[str, Any] = {
        "max_ongoing_requests": 2 * options.max_batch_size,
        "max_queued_requests": options.max_queue,
        "graceful_shutdown_timeout_s": options.drain_timeout_s,
        "ray_actor_options": {"num_cpus": ray_options.cpus_per_replica, "num_gpus": ray_options.gpus_per_replica},
    }
    if ray_options.autoscale is not None:
        low, high = ray_options.autoscale
        result["autoscaling_config"] = {"min_replicas": low, "max_replicas": high, "target_ongoing_requests": options.max_batch_size}
    else:
        result["num_replicas"] = ray_options.num_replicas
    return result


def replica_args(artifacts: Sequence[str | os.PathLike], options: ServeOptions, names: Sequence[str] | None = None) -> dict[str, Any]:
    """The builder's `args`: the artifacts, their names if given, and the replica options."""
    values = asdict(options)
    args: dict[str, Any] = {"artifacts": [str(a) for a in artifacts]}
    if names:
        args["names"] = list(names)
    args.update({name: values[name] for name in REPLICA_OPTIONS})
    return args


def check_artifacts(artifacts: Sequence[str | os.PathLike], options: ServeOptions, ray_options: RayOptions,
                    names: Sequence[str] | None = None, *, missing_ok: bool = False) -> list[str]:
    """Check, without loading a model, what a replica would refuse: names, manifests, and devices against GPUs.

    With `missing_ok`, an artifact not on this machine is skipped with a note (it may be on the cluster's nodes).
    Returns the models' names. Raises `UsageError` listing every problem found (collected, then raised once).
    """
    problems = []
    try:
        found = model_names(artifacts, names)
    except UsageError as exc:
        problems.append(str(exc))
        found = []
    for path in artifacts:
        if missing_ok and not Path(path).exists():
            progress.info(f"`{path}` is not on this machine; every node that runs a replica must have it at this path")
            continue
        try:
            kind = artifact_kind(path)
            manifest = read_manifest(path)
        except ArtifactError as exc:
            problems.append(str(exc))
            continue
        if manifest is None:
            problems.append(f"`{path}` has no pt2kit manifest, so its inputs cannot be checked; export it with `pt2kit export`")
            continue
        built_for = (manifest.extra.get("aoti") or {}).get("device", "cpu") if kind is ArtifactKind.AOTI else "cpu"
        device = options.device or built_for
        if device != built_for:
            problems.append(f"`{path}` runs on {built_for}, not on `--device {device}`" + (
                f"; compile it for {device}: `pt2kit compile {path} -o OUT.aoti.pt2 --device {device}`"))
        elif device == "cuda" and ray_options.gpus_per_replica == 0:
            problems.append(f"`{path}` runs on cuda but replicas get no GPU; pass `--gpus-per-replica 1` (or 0.5 to put two replicas on a GPU)")
        elif device == "cpu" and ray_options.gpus_per_replica > 0:
            problems.append(f"`{path}` runs on the CPU, so `--gpus-per-replica` would reserve GPUs for nothing; drop it or "
                            f"compile for cuda: `pt2kit compile ... --device cuda`")
    if problems:
        raise UsageError("; ".join(problems))
    return found


def ray_application(artifacts: Sequence[str | os.PathLike], options: ServeOptions = ServeOptions(),
                    ray_options: RayOptions = RayOptions(), names: Sequence[str] | None = None, *,
                    check: bool = True, missing_ok: bool = False) -> Application:
    """The Ray Serve application serving `artifacts` as `pt2kit serve` does.

    Args:
        artifacts: AOTInductor packages or `.pt2` programs; every replica's node must have them at these paths.
        options: the serving options (`max_batch_size` and `max_queue_delay_ms` configure `@serve.batch`);
            `host` and `port` are not used here: they are Ray Serve's HTTP proxy's (`serve.start(http_options=...)`).
        ray_options: replicas, autoscaling and resources.
        names: the models' names in URLs (default: each file's name without its suffixes).
        check: read each artifact's manifest here first (needs the files on this machine).
        missing_ok: with `check`, let an artifact that is not on this machine through (the cluster's nodes have it).

    Returns:
        A bound `ray.serve.Application`; run it with `serve.run(app, route_prefix="/")`.

    Raises:
        UsageError: an option out of range, two models with one name, a device without a GPU share, or (with
            `check`) an artifact missing, corrupt or without a manifest.

    Example:
        >>> app = ray_application(["out/mlp.aoti.pt2"], ServeOptions(max_batch_size=32), RayOptions(num_replicas=2))
        >>> serve.run(app, name="pt2kit", route_prefix="/")
    """
    options.check()
    ray_options.check()
    if check:
        check_artifacts(artifacts, options, ray_options, names, missing_ok=missing_ok)
        # replicas do not share this process's directory
        artifacts = [str(Path(a).resolve()) if Path(a).exists() else str(a) for a in artifacts]
    else:
        model_names(artifacts, names)
    args = replica_args(artifacts, options, names)
    return PT2KitServer.options(**deployment_options(options, ray_options)).bind(
        args.pop("artifacts"), args.pop("names", None), args)


def app_builder(args: dict[str, Any]) -> Application:
    """Build the application from a Ray Serve config's `args` (import path `pt2kit.serve.ray_app:app_builder`).

    `args` holds `artifacts` (a list of paths, or one path), optionally `names`, and any of the replica options
    (`max_batch_size`, `max_queue_delay_ms`, `max_queue`, `max_body_mb`, `device`, `warm_up`, `threads`, ...).
    Replicas, autoscaling and resources come from the config's `deployments:` entry for `PT2KitServer`.

    Raises:
        UsageError: `artifacts` missing, an unknown key, or an option out of range.
    """
    args = dict(args or {})
    artifacts = args.pop("artifacts", None)
    if isinstance(artifacts, (str, os.PathLike)):
        artifacts = [artifacts]
    if not artifacts:
        raise UsageError("the Ray Serve config's `args` must list `artifacts`: the package paths to serve")
    names = args.pop("names", None)
    unknown = sorted(set(args) - set(REPLICA_OPTIONS))
    if unknown:
        raise UsageError(f"unknown key(s) {', '.join(f'`{k}`' for k in unknown)} in the config's `args`; pt2kit takes "
                         f"`artifacts`, `names`, {', '.join(f'`{k}`' for k in REPLICA_OPTIONS)}")
    # the files are on the cluster's nodes, not necessarily where this runs: replicas check them as they load
    return ray_application(artifacts, ServeOptions(**args), RayOptions(), names, check=False)
