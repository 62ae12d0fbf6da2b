"""`pt2kit serve ARTIFACT [ARTIFACT ...] [--name NAME] [--host H] [--port P] [--max-batch-size N] ...`."""

from __future__ import annotations

import argparse
import os

from pt2kit.cli.serve_ray import add_ray_arguments, run_ray, wants_ray

WORKER_ENV = "PT2KIT_SERVE_WORKER"  # set to 1 by `--workers` in each worker: bind with SO_REUSEPORT
ENGINE_ENV = "PT2KIT_SERVE_ENGINE"  # set by `--frontends` in each front end: the engine's Unix socket


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="AOTInductor packages or .pt2 programs to serve")
    p.add_argument("--name", help="the model's name in URLs (one artifact only; default: the file name without its suffixes)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--grpc-port", type=int, metavar="P",
                   help="also serve the OIP v2 gRPC service (inference.GRPCInferenceService) on this port (needs pt2kit[grpc])")
    p.add_argument("--max-batch-size", type=int, default=32, metavar="N",
                   help="most rows along the batch dim in one model call (default 32; 1 turns batching off)")
    p.add_argument("--max-queue-delay-ms", type=float, default=0.0, metavar="D",
                   help="how long a request may wait for others to join its batch (default 0: batch what is queued)")
    p.add_argument("--max-queue", type=int, default=1024, metavar="N",
                   help="most requests waiting per model; more get 503 with Retry-After (default 1024)")
    p.add_argument("--max-body-mb", type=float, default=64.0, metavar="MB", help="largest request body; larger get 413 (default 64)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="where to run (default: the device a package was compiled for)")
    p.add_argument("--threads", type=int, metavar="N", help="torch intra-op threads (default: torch's choice; 1 suits a busy machine)")
    p.add_argument("--drain-timeout", type=float, default=30.0, metavar="S",
                   help="on SIGTERM, how long requests in flight may take before they are cut off (default 30; exit 1 if any was)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="server processes sharing the ports, each with its own model instance and batcher (default 1)")
    p.add_argument("--frontends", type=int, default=0, metavar="N",
                   help="N front-end processes (HTTP and gRPC) share the ports and hand requests through shared memory "
                        "to one engine process that owns the models and batches for all of them (default 0: one process)")
    p.add_argument("--no-warm-up", action="store_true", help="skip the warm-up call on zeros before reporting ready")
    add_ray_arguments(p)


def run(args: argparse.Namespace) -> int:
    from pt2kit.errors import UsageError

    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"`pt2kit serve` needs {exc.name}; install the serve extra: `pip install 'pt2kit[serve]'`") from None
    from pt2kit.serve import ServeOptions, build_app, run_server

    if args.name and len(args.artifacts) != 1:
        raise UsageError(f"`--name` names one artifact, got {len(args.artifacts)}; serve each under its file name or one at a time")
    options = ServeOptions(host=args.host, port=args.port, max_batch_size=args.max_batch_size,
                           max_queue_delay_ms=args.max_queue_delay_ms, max_queue=args.max_queue, max_body_mb=args.max_body_mb,
                           device=args.device, warm_up=not args.no_warm_up, threads=args.threads,
                           load_options={"trust_imports": list(args.trust_import)} if args.trust_import else None,
                           drain_timeout_s=args.drain_timeout, grpc_port=args.grpc_port, workers=args.workers,
                           reuse_port=os.environ.get(WORKER_ENV) == "1", frontends=args.frontends,
                           engine_socket=os.environ.get(ENGINE_ENV) or None)
    if args.frontends and wants_ray(args):
        raise UsageError("`--frontends` runs its own engine process and Ray runs replicas; pass one of them")
    if args.frontends and not options.engine_socket:
        from pt2kit.serve.server import run_with_engine

        return run_with_engine(args.artifacts, worker_command(args), options, [args.name] if args.name else None,
                               env={WORKER_ENV: "1"}, engine_env=ENGINE_ENV)
    if args.workers > 1 and not wants_ray(args):
        from pt2kit.serve.server import run_workers

        return run_workers(worker_command(args), options, env={WORKER_ENV: "1"})
    if wants_ray(args):
        return run_ray(args, options, [args.name] if args.name else None)
    app, _ = build_app(args.artifacts, options, names=[args.name] if args.name else None)
    return run_server(app, options)


def worker_command(args: argparse.Namespace) -> list[str]:
    """The `serve` command line of one worker of `--workers` (everything but `--workers`)."""
    command = ["serve", *args.artifacts, "--host", args.host, "--port", str(args.port), "--max-batch-size", str(args.max_batch_size),
               "--max-queue-delay-ms", str(args.max_queue_delay_ms), "--max-queue", str(args.max_queue),
               "--max-body-mb", str(args.max_body_mb), "--drain-timeout", str(args.drain_timeout)]
    for flag, value in (("--name", args.name), ("--device", args.device), ("--threads", args.threads), ("--grpc-port", args.grpc_port)):
        if value is not None:
            command += [flag, str(value)]
    if args.no_warm_up:
        command.append("--no-warm-up")
    for module in getattr(args, "trust_import", None) or ():
        command += ["--trust-import", module]
    if getattr(args, "quiet", False):
        command.append("-q")
    if getattr(args, "verbose", False):
        command.append("-v")
    return command
