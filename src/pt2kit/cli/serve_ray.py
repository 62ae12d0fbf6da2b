"""The Ray Serve flags of `pt2kit serve`: `--ray`, `--num-replicas`, `--autoscale`, `--ray-address`,
`--gpus-per-replica`, `--write-config` (see docs/scale-out.md). `serve_cmd` adds them and hands over when one is given."""

from __future__ import annotations

import argparse

RAY_FLAGS = ("num_replicas", "autoscale", "ray_address", "gpus_per_replica")


def add_ray_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("scale out on Ray Serve (needs `pip install 'pt2kit[ray]'`; see docs/scale-out.md)")
    group.add_argument("--ray", action="store_true",
                       help="deploy on Ray Serve: the same routes, checks and metrics, batching by @serve.batch, replicas run by Ray")
    group.add_argument("--num-replicas", type=int, metavar="N", help="replicas of the server (default 1)")
    group.add_argument("--autoscale", metavar="MIN,MAX", help="let Ray scale replicas between MIN and MAX with the load")
    group.add_argument("--ray-address", metavar="ADDRESS",
                       help="the Ray cluster to join (`ray://HEAD:10001`, `auto`); default: start a local Ray on 127.0.0.1")
    group.add_argument("--gpus-per-replica", type=float, metavar="F", help="GPUs per replica; a fraction packs replicas on a GPU")
    group.add_argument("--write-config", metavar="SERVE.yaml",
                       help="write a Ray Serve config for `serve deploy` or KubeRay instead of serving")


def wants_ray(args: argparse.Namespace) -> bool:
    """Whether the command line asks for Ray (so `serve_cmd` hands over to `run_ray`)."""
    return bool(args.ray or args.write_config or any(getattr(args, f) is not None for f in RAY_FLAGS))


def ray_options(args: argparse.Namespace):
    from pt2kit.errors import UsageError
    from pt2kit.serve.ray_app import RayOptions

    if args.num_replicas is not None and args.autoscale is not None:
        raise UsageError("give `--num-replicas N` or `--autoscale MIN,MAX`, not both")
    autoscale = None
    if args.autoscale is not None:
        parts = args.autoscale.split(",")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise UsageError(f"`--autoscale` takes MIN,MAX replicas, got `{args.autoscale}`; e.g. `--autoscale 1,4`")
        autoscale = (int(parts[0]), int(parts[1]))
    return RayOptions(num_replicas=args.num_replicas or 1, autoscale=autoscale, address=args.ray_address,
                      gpus_per_replica=args.gpus_per_replica or 0.0)


def run_ray(args: argparse.Namespace, options, names) -> int:
    """Write the config (`--write-config`) or serve on Ray (`--ray`)."""
    from pt2kit.errors import UsageError

    if not args.ray and not args.write_config:
        given = next(f for f in RAY_FLAGS if getattr(args, f) is not None)
        raise UsageError(f"`--{given.replace('_', '-')}` configures Ray Serve; add `--ray` to serve there or `--write-config serve.yaml`")
    if args.ray and args.write_config:
        raise UsageError("`--write-config` writes the config instead of serving; drop `--ray` (deploy the file with `serve deploy`)")
    if args.write_config and args.ray_address:
        raise UsageError("`--ray-address` is for `--ray`; a written config is deployed with `serve deploy FILE --address ...`")
    try:
        import ray.serve  # noqa: F401
    except ImportError:
        raise UsageError("`pt2kit serve --ray` and `--write-config` need Ray Serve; install the ray extra: `pip install 'pt2kit[ray]'`") from None
    if args.write_config:
        from pt2kit.serve.ray_config import write_ray_config

        print(write_ray_config(args.write_config, args.artifacts, options, ray_options(args), names))
        return 0
    from pt2kit.serve.ray_run import serve_on_ray

    return serve_on_ray(args.artifacts, options, ray_options(args), names)
