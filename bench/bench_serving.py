"""Benchmark: the price-estimate service against a bare Flask + gunicorn handler, side by side.

Both servers run gunicorn with the same worker count on 127.0.0.1 and the same bundle (a
1,000-tree point model; quantile models as in params.yaml), one LightGBM thread per worker. The
product keeps everything in the measured path: validation, the prediction log in SQLite,
metrics. Reported:

- throughput: wrk, 8 connections, one single-listing request body (needs `wrk` on PATH), the
  two servers measured alternately (median of --repeats runs), and the CPU time their workers
  spent per request (a busy machine moves req/s a lot, CPU per request much less)
- sequential round trip: mean latency of wrk with one connection, and of a Python client
  sending single-listing requests one at a time (a new connection each)
- in-process: Predictor.estimate (as the service builds it) for one listing, repeated and
  varied (µs), and for 1,000 listings (ms)
- HTTP batch: one 1,000-listing request, round trip (ms)
- the product logging to PostgreSQL (`--pg-url`, default the local `test` database; `--no-pg`
  skips it) beside the product on SQLite
- the service image (what production runs) as a third contender, measured in the same
  alternating wrk rounds: built with the benchmark bundle, or `--image ID`; `--no-image` skips it
- the image logging to PostgreSQL (`image-pg`, with `--pg-url`) beside the image on SQLite
- the same image with gunicorn's sync workers (`image-sync`, CARPRICE_WORKER_CLASS=sync): the
  cost of the slow-client defence, the gevent workers production runs
- the product with an API key (`X-API-Key`, a client with a quota too large to reach) beside
  the same server's anonymous calls: the cost of the key check and quota count

    .venv/bin/python bench/bench_serving.py [--bundle DIR] [--seconds 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from serving.examples import EXAMPLE_LISTING

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(__file__).resolve().parent / "serving_peers"
LISTING = EXAMPLE_LISTING
BODY = json.dumps({"listings": [LISTING]})
# Every contender's load comes from one address: its anonymous per-address limit is lifted out
# of reach, so the count still runs on each request but never refuses one (non-2xx stays 0).
BENCH_SETTINGS = {
    "CARPRICE_ANONYMOUS_LISTINGS_PER_MINUTE": "1000000000",
    "CARPRICE_ANONYMOUS_MAX_LISTINGS": "1000",
}


def build_bundle(out: Path, trees: int) -> Path:
    """Train the benchmark bundle on the clean listings (point model with `trees` trees)."""
    import pandas as pd

    from carprice.config import load_params
    from carprice.model.train import TrainParams, split_of, train
    from carprice.runtime.bundle import write_bundle

    clean = ROOT / "data" / "validated" / "clean.parquet"
    if not clean.exists():
        sys.exit(f"{clean} not found: run `make validate` first, or pass --bundle DIR")
    frame = pd.read_parquet(clean)
    params = TrainParams.from_params(load_params(ROOT / "params.yaml")["train"])
    params = dataclasses.replace(params, num_boost_round=trees)  # quantile rounds as in params
    model = train(frame, split_of(frame, params.test_share, params.calibration_share), params)
    keys = sorted(set(zip(frame["make"], frame["model"], strict=True)))
    return write_bundle(
        out,
        boosters=model.boosters,
        spec=model.spec,
        supported=keys,
        interval=model.interval,
        metadata={"model_version": f"bench-{trees}"},
    )


def call(port: int, body: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/v1/estimates", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def start(argv: list[str], env: dict, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        argv, cwd=ROOT, env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if call(port, BODY) == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    sys.exit(f"server on port {port} did not come up; see {log}")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def sequential_ms(port: int, count: int) -> float:
    for _ in range(50):
        call(port, BODY)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        assert call(port, BODY) == 200
        times.append(time.perf_counter() - started)
    return statistics.fmean(times) * 1000


def _seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def server_cpu_seconds(master: int) -> float:
    """Return the CPU time (user + system) the master's live workers have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    total = 0
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def wrk(port: int, seconds: int, script: Path, connections: int = 8, master: int = 0) -> dict:
    cpu_before = server_cpu_seconds(master) if master else 0.0
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(connections, 2)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/v1/estimates",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = server_cpu_seconds(master) - cpu_before if master else float("nan")
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = _seconds(re.search(r"Latency\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "req_per_s": rps,
        "server_cpu_us_per_request": cpu / max(requests, 1) * 1e6,
        "latency_ms": latency * 1000,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def varied_listings(bundle, count: int, seed: int = 1) -> list[dict]:
    """Return API listings over the bundle's supported models with random plausible numbers."""
    rng = random.Random(seed)
    keys = sorted(bundle.supported)
    vocab = bundle.spec.vocab
    listings = []
    for _ in range(count):
        make, model = rng.choice(keys).split("|", 1)
        listings.append(
            {
                "make": make,
                "model": model,
                "fuel": rng.choice(vocab["fuel"]),
                "gear": rng.choice(vocab["gear"]),
                "offer_type": rng.choice(vocab["offerType"]),
                "mileage": rng.randint(0, 300_000),
                "hp": rng.randint(60, 400),
                "year": rng.randint(2005, 2025),
            }
        )
    return listings


def _canonical(listing: dict) -> dict:
    return {("offerType" if k == "offer_type" else k): v for k, v in listing.items()}


def in_process(bundle: Path) -> dict:
    from carprice.runtime.bundle import load_bundle
    from carprice.runtime.predictor import Predictor

    predictor = Predictor(load_bundle(bundle), compiled=True)
    one = _canonical(LISTING)
    varied = [_canonical(x) for x in varied_listings(predictor.bundle, 1000)]
    for _ in range(200):
        predictor.estimate([one])
    n = 5000
    started = time.perf_counter()
    for _ in range(n):
        predictor.estimate([one])
    repeated_us = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for _ in range(5):
        for listing in varied:
            predictor.estimate([listing])
    varied_us = (time.perf_counter() - started) / (5 * len(varied)) * 1e6
    runs = []
    for _ in range(10):
        started = time.perf_counter()
        predictor.estimate(varied)
        runs.append(time.perf_counter() - started)
    return {
        "compiled_trees": predictor.compiled,
        "single_listing_us": repeated_us,
        "single_varied_listing_us": varied_us,
        "batch_1000_ms": statistics.median(runs) * 1000,
    }


def batch_http_ms(port: int, bundle: Path) -> float:
    from carprice.runtime.bundle import load_bundle

    body = json.dumps({"listings": varied_listings(load_bundle(bundle), 1000)})
    runs = []
    for _ in range(10):
        started = time.perf_counter()
        assert call(port, body) == 200
        runs.append(time.perf_counter() - started)
    return statistics.median(runs) * 1000


def _peers(
    bundle: Path, work: Path, workers: int, pg_url: str | None
) -> dict[str, tuple[list[str], dict]]:
    gunicorn = [sys.executable, "-m", "gunicorn", "--workers", str(workers)]
    bare = ["-c", str(PEERS / "bare.conf.py"), "--chdir", str(PEERS)]
    product = ["-c", str(ROOT / "serving" / "gunicorn.conf.py")]
    peers = {
        "bare": (
            [*gunicorn, *bare, "--bind", "127.0.0.1:{port}", "bare_app:create_app()"],
            {"BARE_BUNDLE": str(bundle)},
        ),
        "product": (
            [*gunicorn, *product, "--bind", "127.0.0.1:{port}", "serving.app:create_app()"],
            {
                "CARPRICE_BUNDLE": str(bundle),
                "CARPRICE_HOME": str(work / "home"),
                "CARPRICE_DB_URL": "",
                **BENCH_SETTINGS,
            },
        ),
    }
    if pg_url:
        peers["product-pg"] = (
            [*gunicorn, *product, "--bind", "127.0.0.1:{port}", "serving.app:create_app()"],
            {
                "CARPRICE_BUNDLE": str(bundle),
                "CARPRICE_HOME": str(work / "home-pg"),
                "CARPRICE_DB_URL": pg_url,
                "CARPRICE_DB_PREFIX": PG_PREFIX,
                **BENCH_SETTINGS,
            },
        )
    return peers


PG_PREFIX = f"bench{os.getpid()}_"


def add_bench_client(home: Path) -> str:
    """Add a client with an unreachable quota to the product's store; return its key."""
    from carprice.runtime.clients import UNLIMITED, add_client
    from carprice.runtime.store import DB_FILE, Store

    store = Store(f"sqlite:///{home / DB_FILE}")
    try:
        store.create()
        return add_client(store, "bench", "estimate", estimates_per_minute=UNLIMITED)
    finally:
        store.dispose()


def drop_pg_tables(url: str, prefix: str) -> None:
    from carprice.runtime.store import Store

    store = Store(url, prefix)
    store.drop()
    store.dispose()


class ImageServer:
    """The service image (what production runs) as a container on the host network."""

    def __init__(self, image: str, port: int, workers: int, log: Path, env: dict | None = None):
        from carprice.release import container

        self.engine = container.detect()
        if self.engine is None:
            sys.exit("no container engine for the image contender (`make container-setup`)")
        self.log = log
        env = {
            "CARPRICE_BIND": f"127.0.0.1:{port}",
            "CARPRICE_WORKERS": str(workers),
            "CARPRICE_KEY_PEPPER": os.environ["CARPRICE_KEY_PEPPER"],
            **BENCH_SETTINGS,
            **(env or {}),
        }
        args = ["run", "-d", "--network", "host"]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        self.cid = self.engine.run(*args, image).strip()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if call(port, BODY) == 200:
                    break
            except OSError:
                time.sleep(0.3)
        else:
            self.stop()
            sys.exit(f"the image did not come up on port {port}; see {log}")
        self.pid = int(self.engine.run("inspect", "--format", "{{.State.Pid}}", self.cid).strip())
        model = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz").read())
        self.runtime = model.get("runtime", {})

    def stop(self) -> None:
        self.log.write_text(self.engine.logs(self.cid))
        self.engine.remove(self.cid)


def build_image(bundle: Path) -> str:
    """Build the service image with the benchmark bundle baked in; return its id."""
    from carprice.release import container

    print("building the service image with the benchmark bundle ...", file=sys.stderr)
    return container.build(bundle, "carprice:bench-serving")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", help="bundle directory (default: train a 1,000-tree one)")
    parser.add_argument("--trees", type=int, default=1000, help="point-model trees to train")
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="alternating wrk runs per server")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sequential", type=int, default=2000)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--image", help="service image id or tag to measure (default: build one with the bundle)"
    )
    parser.add_argument("--no-image", action="store_true", help="leave the image contender out")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "CARPRICE_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="PostgreSQL for the product-pg contender (tables with a throw-away prefix)",
    )
    parser.add_argument("--no-pg", action="store_true", help="leave the PostgreSQL contender out")
    return parser.parse_args()


def wrk_script(path: Path, key: str | None = None) -> Path:
    """Write the wrk script that posts BODY (with an API key when given); return its path."""
    text = (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(BODY)}\n"
    )
    if key:
        text += f'wrk.headers["X-API-Key"] = "{key}"\n'
    path.write_text(text)
    return path


@dataclasses.dataclass
class Contenders:
    """The servers measured: each one's port, gunicorn master (for its workers' CPU time) and
    wrk script. `product-auth` is the product server again, called with an API key."""

    ports: dict[str, int]
    masters: dict[str, int] = dataclasses.field(default_factory=dict)
    scripts: dict[str, Path] = dataclasses.field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = dataclasses.field(default_factory=dict)
    images: dict[str, ImageServer] = dataclasses.field(default_factory=dict)

    @property
    def image(self) -> ImageServer | None:
        return self.images.get("image")

    @classmethod
    def planned(cls, pg: bool, image: bool) -> Contenders:
        ports = {"bare": 8301, "product": 8302}
        if pg:
            ports["product-pg"] = 8304
        if image:
            ports["image"] = 8303
            ports["image-sync"] = 8305
        if image and pg:
            ports["image-pg"] = 8306
        return cls(ports)

    def start(self, bundle: Path, work: Path, workers: int, pg_url: str | None, image: str | None):
        """Start every server at once: the measurements alternate, so all see the same
        machine."""
        for name, (argv, env) in _peers(bundle, work, workers, pg_url).items():
            port = self.ports[name]
            self.procs[name] = start(
                [a.format(port=port) for a in argv], env, port, work / f"{name}.log"
            )
            self.masters[name] = self.procs[name].pid
        script = wrk_script(work / "post.lua")
        auth = wrk_script(work / "post-auth.lua", add_bench_client(work / "home"))
        self.ports["product-auth"], self.masters["product-auth"] = (
            self.ports["product"],
            self.masters["product"],
        )
        self.scripts = {name: script for name in self.ports} | {"product-auth": auth}
        variants = {
            "image": {},
            "image-sync": {"CARPRICE_WORKER_CLASS": "sync"},
            # the image logging to PostgreSQL (its own table prefix) beside the image on SQLite
            "image-pg": {"CARPRICE_DB_URL": pg_url or "", "CARPRICE_DB_PREFIX": f"{PG_PREFIX}i_"},
        }
        for name, env in variants.items():
            if image and name in self.ports:
                log = work / f"{name}.log"
                self.images[name] = ImageServer(image, self.ports[name], workers, log, env)
                self.masters[name] = self.images[name].pid

    def stop(self) -> None:
        for proc in self.procs.values():
            stop(proc)
        for image in self.images.values():
            image.stop()


def throughput(servers: Contenders, seconds: int, repeats: int, figures: dict) -> None:
    """wrk rounds over every contender in alternating order, then each one's medians and its
    one-connection latency, into `figures`."""
    ports, scripts = servers.ports, servers.scripts
    for repeat in range(repeats):
        order = list(ports) if repeat % 2 == 0 else list(reversed(ports))
        for name in order:
            run = wrk(ports[name], seconds, scripts[name], master=servers.masters[name])
            figures[name]["wrk"].append(run)
    for name, port in ports.items():
        runs = figures[name]["wrk"]
        figures[name]["req_per_s"] = statistics.median(r["req_per_s"] for r in runs)
        figures[name]["non_2xx"] = sum(r["non_2xx"] for r in runs)
        figures[name]["server_cpu_us_per_request"] = statistics.median(
            r["server_cpu_us_per_request"] for r in runs
        )
        c1 = wrk(port, 5, scripts[name], 1)
        figures[name]["wrk_c1_latency_ms"] = c1["latency_ms"]


def measure(servers: Contenders, args: argparse.Namespace, bundle: Path) -> dict:
    """Sequential round trips, throughput (when wrk is installed) and the HTTP batch."""
    figures: dict = {name: {"wrk": []} for name in servers.ports}
    for name, port in servers.ports.items():
        if name != "product-auth":  # its sequential client sends no key
            figures[name]["sequential_ms"] = sequential_ms(port, args.sequential)
    if shutil.which("wrk"):
        throughput(servers, args.seconds, args.repeats, figures)
    figures["product"]["batch_1000_http_ms"] = batch_http_ms(servers.ports["product"], bundle)
    return figures


def main() -> int:
    args = parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    # One throw-away key pepper for the bench client's key and every server (the PostgreSQL
    # contenders refuse to start without one).
    os.environ["CARPRICE_KEY_PEPPER"] = os.urandom(32).hex()
    with tempfile.TemporaryDirectory(prefix="carprice-bench-serving-") as tmp:
        work = Path(tmp)
        bundle = Path(args.bundle) if args.bundle else build_bundle(work / "bundle", args.trees)
        results: dict = {"in_process": in_process(bundle)}
        pg_url = None if args.no_pg else args.pg_url
        image = None if args.no_image else (args.image or build_image(bundle))
        servers = Contenders.planned(pg=bool(pg_url), image=bool(image))
        try:
            servers.start(bundle, work, args.workers, pg_url, image)
            if servers.image is not None:
                results["image_runtime"] = {"image": image, **servers.image.runtime}
            results.update(measure(servers, args, bundle))
        finally:
            servers.stop()
            if pg_url:
                drop_pg_tables(pg_url, PG_PREFIX)
                if image:
                    drop_pg_tables(pg_url, f"{PG_PREFIX}i_")
        report(results)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


# Contenders reported as a share of another one's throughput, measured in the same rounds:
# (contender, reference, what the line says, target share).
RATIOS = (
    ("image", "bare", "image (container)", 0.80),
    ("image", "image-sync", "image (gevent) vs its sync workers", 0.90),
    ("image-pg", "image", "image on PostgreSQL vs on SQLite", 0.90),
    ("product-pg", "product", "product on PostgreSQL vs on SQLite", 0.90),
    ("product-auth", "product", "product with an API key vs anonymous", 0.95),
)


def _ratio_line(results: dict, name: str, of: str, label: str, target: float) -> None:
    """Print a contender's median req/s as a share of its reference's, and each round's pair."""
    mine, theirs = results.get(name, {}), results.get(of, {})
    if "req_per_s" not in mine or "req_per_s" not in theirs:
        return
    ratio = mine["req_per_s"] / theirs["req_per_s"]
    print(
        f"{label + ' req/s':44}{mine['req_per_s']:>10,.0f}   = {ratio:.2f} of {of} "
        f"(target >= {target:.2f}); non-2xx {mine['non_2xx']}, "
        f"CPU {mine['server_cpu_us_per_request']:,.0f} µs/request"
    )
    runs = zip(theirs["wrk"], mine["wrk"], strict=True)
    pairs = ", ".join(f"{t['req_per_s']:,.0f}/{m['req_per_s']:,.0f}" for t, m in runs)
    print(f"{'  each round, ' + of + '/' + name:44}{pairs}")


def report(results: dict) -> None:
    bare, product, inproc = results["bare"], results["product"], results["in_process"]
    print(f"{'':34}{'bare handler':>14}{'product':>14}")
    if "req_per_s" in bare:
        share = product["req_per_s"] / bare["req_per_s"]
        print(
            f"{'wrk -c8 req/s (median)':34}{bare['req_per_s']:>14,.0f}"
            f"{product['req_per_s']:>14,.0f}   product = {share:.0%} of bare (target >= 70%)"
        )
        if "image_runtime" in results:
            print(f"{'image scorer':34}{results['image_runtime'].get('scorer')}")
        for name, of, label, target in RATIOS:
            _ratio_line(results, name, of, label, target)
        runs = zip(bare["wrk"], product["wrk"], strict=True)
        pairs = ", ".join(f"{b['req_per_s']:,.0f}/{p['req_per_s']:,.0f}" for b, p in runs)
        print(f"{'  each run, bare/product':34}{pairs}")
        print(f"{'wrk -c8 non-2xx responses':34}{bare['non_2xx']:>14}{product['non_2xx']:>14}")
        cpu_b, cpu_p = bare["server_cpu_us_per_request"], product["server_cpu_us_per_request"]
        print(
            f"{'server CPU µs per request':34}{cpu_b:>14,.0f}{cpu_p:>14,.0f}"
            f"   capacity: product = {cpu_b / cpu_p:.0%} of bare (robust to a busy machine)"
        )
        print(
            f"{'sequential (wrk -c1) mean ms':34}{bare['wrk_c1_latency_ms']:>14.3f}"
            f"{product['wrk_c1_latency_ms']:>14.3f}   (target <= 0.6 ms)"
        )
    else:
        print("wrk not found: throughput not measured (apt-get install -y wrk)")
    print(
        f"{'sequential (Python client) ms':34}{bare['sequential_ms']:>14.3f}"
        f"{product['sequential_ms']:>14.3f}"
    )
    print(f"in-process, compiled trees: {inproc['compiled_trees']}")
    print(f"  one listing, repeated:    {inproc['single_listing_us']:.1f} µs (target <= 25 µs)")
    print(f"  one listing, varied:      {inproc['single_varied_listing_us']:.1f} µs")
    print(f"  1,000 listings:           {inproc['batch_1000_ms']:.1f} ms")
    print(f"HTTP 1,000-listing request: {product['batch_1000_http_ms']:.1f} ms (target <= 30 ms)")
    print("mlflow models serve: not measured (mlflow is not part of the serving environment)")


if __name__ == "__main__":
    sys.exit(main())
