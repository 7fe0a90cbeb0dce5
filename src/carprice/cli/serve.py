"""The serve subcommand of `carprice`: production (the champion image) or a local process.

`carprice serve` runs the champion image, the one gate 3 tested, as a container on the port and
returns, saying which release and image serve where and how to stop them; promote and rollback
replace that container without failing a request. Scripts read the container's id, image and ports
from CARPRICE_HOME/run/production.json (`production.state`), not from this command's output.
`carprice serve --local` runs the service from this checkout under gunicorn in the foreground,
for development.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from carprice.cli.progress import say
from carprice.config import PROJECT_ROOT, Paths


def _serving_dir() -> Path:
    for root in (Path.cwd(), PROJECT_ROOT):
        if (root / "serving" / "gunicorn.conf.py").is_file():
            return root / "serving"
    raise FileNotFoundError("serving/gunicorn.conf.py not found (run from the project root)")


def cmd_serve_local(args: argparse.Namespace) -> int:
    import os

    from carprice.runtime import pointer
    from carprice.runtime.bundle import BundleError, verify_bundle

    serving = _serving_dir()
    home = Paths.from_env().home
    bundle = Path(args.bundle).resolve() if args.bundle else pointer.read_pointer(home)
    if bundle is None:
        raise FileNotFoundError(f"no bundle: pass --bundle DIR or set {pointer.pointer_path(home)}")
    try:
        verify_bundle(bundle)
    except BundleError as err:
        print(f"carprice serve: bundle refused: {err}", file=sys.stderr)
        return 2
    os.environ["CARPRICE_HOME"] = str(home)
    if args.bundle:
        os.environ["CARPRICE_BUNDLE"] = str(bundle)
    argv = [sys.executable, "-m", "gunicorn", "-c", str(serving / "gunicorn.conf.py")]
    argv += ["--bind", f"{args.host}:{args.port}", "--chdir", str(serving.parent)]
    from carprice.release.promote import pidfile

    pidfile(home).parent.mkdir(parents=True, exist_ok=True)
    argv += ["--pid", str(pidfile(home))]  # promote and rollback reload it with SIGHUP
    if args.workers:
        argv += ["--workers", str(args.workers)]
    argv.append("serving.app:create_app()")
    say(f"serving {bundle} on http://{args.host}:{args.port} (CARPRICE_HOME={home})")
    sys.stdout.flush()
    os.execv(sys.executable, argv)  # gunicorn replaces this process: signals reach it directly
    return 0  # not reached


def cmd_serve(args: argparse.Namespace) -> int:
    if args.local:
        return cmd_serve_local(args)
    from carprice.release import container, production

    home = Paths.from_env().home
    if args.stop:
        say(production.stop(home))
        return 0
    if args.bundle or args.host != "127.0.0.1":
        raise ValueError("--bundle and --host apply to --local; production serves the champion")
    try:
        record = production.serve(home, args.port, args.workers or 2, say)
    except (production.ProductionError, container.EngineError) as err:
        print(f"carprice serve: {err}", file=sys.stderr)
        return 1
    say(
        f"release {record.get('release')} ({record.get('model_version')}) serves on "
        f"http://127.0.0.1:{record['port']} from image {record['image_id'][:19]}; "
        "stop it with `make serve-stop`"
    )
    return 0


def add_commands(sub) -> None:
    """Register the serve subcommand on the `carprice` parser."""
    p = sub.add_parser(
        "serve",
        help="run the champion image on PORT (or --local: this checkout, foreground)",
        description="Run the champion image, the one gate 3 tested, as a container on "
        "127.0.0.1:PORT and return once it is ready; the container's id, image and ports are "
        "recorded in CARPRICE_HOME/run/production.json. --stop stops it. --local runs this "
        "checkout under gunicorn in the foreground instead, for development.",
    )
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (--local: --host)")
    p.add_argument("--workers", type=int, help="gunicorn workers (default: 2; --local: per core)")
    p.add_argument("--stop", action="store_true", help="stop the production container")
    p.add_argument(
        "--local", action="store_true", help="development: gunicorn from this checkout, foreground"
    )
    p.add_argument("--host", default="127.0.0.1", help="--local: address to bind")
    p.add_argument("--bundle", help="--local: serve this bundle instead of the deploy pointer")
    p.set_defaults(func=cmd_serve)
