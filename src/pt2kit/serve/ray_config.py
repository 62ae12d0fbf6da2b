"""`pt2kit serve ... --write-config serve.yaml`: a Ray Serve config file for `serve deploy` or KubeRay's RayService.

The config names pt2kit's builder (`pt2kit.serve.ray_app:app_builder`) as its import path; its `args` hold the
artifact paths and the serving options, its `deployments:` entry the replicas, autoscaling and resources (both
from `ray_app`, so the file says what `pt2kit serve --ray` would run). The paths are the only input: every node
that runs a replica needs pt2kit[ray] installed and the artifacts at those paths.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from pt2kit.artifact.package import atomic_path
from pt2kit.errors import UsageError
from pt2kit.serve.ray_app import BUILDER_IMPORT_PATH, DEPLOYMENT_NAME, RayOptions, check_artifacts, deployment_options, replica_args
from pt2kit.serve.server import ServeOptions

_HEADER = """\
# Ray Serve config written by pt2kit (`pt2kit serve --write-config`).
# Deploy: `serve deploy {name}` against a running cluster (`ray start --head` first, or --address), or paste
# `applications:` under `serveConfigV2:` of a KubeRay RayService. Every node running a replica needs
# `pip install 'pt2kit[ray]'` and the artifact paths below. Docs: docs/scale-out.md in pt2kit.
"""


@dataclass(frozen=True)
class RayConfigFile:
    """A written Ray Serve config: where, which application, and its deployment options."""

    path: Path
    app_name: str
    import_path: str
    artifacts: tuple[str, ...]
    deployment: dict[str, Any]

    def __str__(self) -> str:
        scale = self.deployment.get("autoscaling_config")
        replicas = (f"{scale['min_replicas']}-{scale['max_replicas']} replicas (autoscaled)" if scale
                    else f"{self.deployment['num_replicas']} replica(s)")
        return (f"wrote Ray Serve config {self.path}: application `{self.app_name}` ({self.import_path}), {replicas}, "
                f"serving {', '.join(self.artifacts)}\ndeploy it with: serve deploy {self.path}")

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "app_name": self.app_name, "import_path": self.import_path,
                "artifacts": list(self.artifacts), "deployment": self.deployment}


def ray_config(artifacts: Sequence[str | os.PathLike], options: ServeOptions = ServeOptions(),
               ray_options: RayOptions = RayOptions(), names: Sequence[str] | None = None) -> dict[str, Any]:
    """The Ray Serve config (a `ServeDeploySchema` as a dict) that serves `artifacts` as `pt2kit serve --ray` does.

    Artifacts on this machine are checked (manifest, device against `gpus_per_replica`) and written as absolute
    paths; others are written as given, for the cluster's nodes to hold.

    Raises:
        UsageError: an option out of range, or an artifact here that a replica would refuse.
    """
    options.check()
    ray_options.check()
    check_artifacts(artifacts, options, ray_options, names, missing_ok=True)
    paths = [str(Path(a).resolve()) if Path(a).exists() else str(a) for a in artifacts]
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": options.host, "port": options.port},
        "applications": [{
            "name": ray_options.app_name,
            "route_prefix": ray_options.route_prefix,
            "import_path": BUILDER_IMPORT_PATH,
            "args": replica_args(paths, options, names),
            "deployments": [{"name": DEPLOYMENT_NAME, **deployment_options(options, ray_options)}],
        }],
    }


def write_ray_config(path: str | os.PathLike, artifacts: Sequence[str | os.PathLike], options: ServeOptions = ServeOptions(),
                     ray_options: RayOptions = RayOptions(), names: Sequence[str] | None = None) -> RayConfigFile:
    """Write `ray_config(...)` as YAML to `path` (atomically), after Ray Serve's own schema accepts it.

    Raises:
        UsageError: as `ray_config`, or `path` is not a `.yaml`/`.yml` file in an existing folder.

    Example:
        >>> write_ray_config("serve.yaml", ["/models/mlp.aoti.pt2"], ray_options=RayOptions(autoscale=(1, 4)))
    """
    from ray.serve.schema import ServeDeploySchema

    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        raise UsageError(f"`--write-config` writes YAML; name the file `*.yaml`, got `{path}`")
    if not path.parent.is_dir():
        raise UsageError(f"folder `{path.parent}` of `--write-config` does not exist; create it or write the config elsewhere")
    config = ray_config(artifacts, options, ray_options, names)
    ServeDeploySchema.model_validate(config)  # what `serve deploy` checks first; a failure here is a pt2kit bug
    # through JSON: plain types only (no tuples or Paths in the YAML)
    text = _HEADER.format(name=path.name) + yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    app = config["applications"][0]
    return RayConfigFile(path, app["name"], app["import_path"], tuple(app["args"]["artifacts"]), app["deployments"][0])
