"""The release cycle against real containers: every gate failing on purpose, rollback, reproduce.

The tests run in file order on one session's history: release 1 is made by the `world` fixture;
a second, good challenger is packaged once with a tampered bundle (gate 3 must stop it), then
properly; an A/B experiment of it runs in the production container (a tampered copy of its
bundle is refused first) and it is promoted by that experiment; the rollback goes back to
release 1.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from carprice.release import container, promote
from carprice.release.production import state as production_state
from carprice.runtime.bundle import BOOSTERS, JSON_FILES
from carprice.runtime.home import file_sha256
from carprice.runtime.store import Store, default_url
from tests.e2e.conftest import write_params
from tests.e2e.experiment import replay_experiment
from tests.e2e.traffic import SLOW_S, Traffic, taken_at

pytestmark = [pytest.mark.slow, pytest.mark.container]


def test_retrain_releases_the_first_model_through_all_three_gates(world):
    log = (world.root / "runs" / "first.log").read_text()
    for stage in (
        "ingest",
        "gate 1 (data)",
        "train",
        "gate 2 (model)",
        "package",
        "image build",
        "gate 3 (artifact)",
        "promote",
        "total w/o image build",
    ):
        assert f"  {stage}" in log.split("== timings (s)")[1], stage
    champion, pointer = world.production()
    manifest = json.loads(
        (promote.releases_dir(world.home) / champion / "manifest.json").read_text()
    )
    assert pointer == (promote.releases_dir(world.home) / champion / "bundle").resolve()
    assert all(gate["passed"] for gate in manifest["gates"].values())
    assert manifest["model_sha256"] == file_sha256(pointer / "model.txt")
    assert len(manifest["snapshot"]["sha256"]) == 64 and len(manifest["params_hash"]) == 64
    assert manifest["git_commit"] and world.engine.image_exists(manifest["image"]["id"])
    gate3 = json.loads((pointer.parent / "gate3" / "e2e.json").read_text())
    assert gate3["target"]["kind"] == "container"
    assert gate3["parity"]["single"]["cases"] >= 500
    [entry] = promote.history(world.home)
    assert entry["action"] == "promote" and entry["release"] == champion


def test_the_container_runs_as_a_non_root_user(world):
    champion, pointer = world.production()
    manifest = json.loads((pointer.parent / "manifest.json").read_text())
    image = manifest["image"]["id"]
    assert world.engine.image_info(image)["user"] not in ("", "0", "root")
    uid = world.engine.run("run", "--rm", "--entrypoint", "id", image, "-u").strip()
    assert uid.splitlines()[-1] == "10001"


def test_too_little_data_stops_retrain_at_gate_1_and_production_is_unchanged(world):
    before = world.production()
    tiny = world.root / "raw" / "tiny.csv"
    rows = (world.root / "raw" / "a").glob("listings-*.csv").__next__().read_text().splitlines()
    tiny.write_text("\n".join(rows[:300]) + "\n")
    proc = world.retrain("tiny", tiny, world.root / "params.yaml")
    assert proc.returncode == 1
    assert "retrain stopped: gate 1 (data) failed" in proc.stdout
    assert "== train" not in proc.stdout
    assert world.production() == before


def test_a_one_tree_model_stops_retrain_at_gate_2_and_production_is_unchanged(world):
    before = world.production()
    params = write_params(world.root / "one-tree.yaml", num_boost_round=1, quantile_boost_round=1)
    proc = world.retrain("one-tree", world.root / "raw" / "a", params)
    assert proc.returncode == 1
    assert "retrain stopped: gate 2 (model) failed" in proc.stdout
    assert "== package" not in proc.stdout
    assert world.production() == before


@pytest.fixture(scope="module")
def second(world):
    """A second good challenger (one more week of data) through gate 2, not yet packaged."""
    sim = world.carprice(
        "simulate",
        "--weeks",
        "1",
        "--start",
        "2026-03-16",
        "--seed",
        "8",
        "--listings-per-week",
        "6000",
        "--out",
        str(world.root / "raw" / "b"),
    )
    assert sim.returncode == 0, sim.stderr
    for path in (world.root / "raw" / "a").iterdir():
        shutil.copy(path, world.root / "raw" / "b" / path.name)
    dirs = world.run_dirs("second")
    params = str(world.root / "params.yaml")
    snap = world.carprice("ingest", "--listings", str(world.root / "raw" / "b"))
    steps = [
        [
            "validate",
            "--listings",
            snap.stdout.strip(),
            "--out",
            dirs["VALIDATED"],
            "--params",
            params,
        ],
        ["train", "--data", dirs["VALIDATED"], "--out", dirs["MODEL"], "--params", params],
        [
            "evaluate",
            "--data",
            dirs["VALIDATED"],
            "--model",
            dirs["MODEL"],
            "--out",
            dirs["EVALUATION"],
            "--params",
            params,
        ],
    ]
    for step in steps:
        proc = world.carprice(*step)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return dirs


def _tamper(bundle: Path) -> None:
    """Reorder the make vocabulary (an encoder that disagrees with the model) and re-sign."""
    path = bundle / "feature_spec.json"
    spec = json.loads(path.read_text())
    spec["vocab"]["make"] = spec["vocab"]["make"][::-1]
    path.write_text(json.dumps(spec, sort_keys=True) + "\n")
    sums = {name: file_sha256(bundle / name) for name in BOOSTERS + JSON_FILES}
    (bundle / "checksums.json").write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n")


def test_a_service_answering_differently_fails_gate_3_and_cannot_be_promoted(world, second):
    before = world.production()
    params = str(world.root / "params.yaml")
    package = Path(second["PACKAGE"])
    proc = world.carprice(
        "package", "--data", second["VALIDATED"], "--out", str(package), "--params", params
    )
    assert proc.returncode == 0, proc.stderr
    _tamper(package / "bundle")  # after the golden set was computed from the registered bundle
    proc = world.carprice("image", "--package", str(package))
    assert proc.returncode == 0, proc.stderr[-3000:]
    world.images.append(json.loads((package / "image.json").read_text())["tag"])
    proc = world.carprice(
        "e2e", "--package", str(package), "--out", second["E2E"], "--params", params
    )
    assert proc.returncode == 1
    assert "gate 3 (artifact): FAILED" in proc.stderr and "parity" in proc.stderr
    report = json.loads((Path(second["E2E"]) / "e2e.json").read_text())
    assert report["parity"]["single"]["mismatches"] > 0
    assert (Path(second["E2E"]) / "e2e.html").exists()
    proc = world.carprice(
        "promote",
        "--package",
        str(package),
        "--gate1",
        second["VALIDATED"],
        "--gate2",
        second["EVALUATION"],
        "--gate3",
        second["E2E"],
        "--params",
        params,
    )
    assert proc.returncode == 1 and "gate3='failed'" in proc.stderr
    assert world.production() == before


def _get(port: int, path: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def production(world):
    """`carprice serve`: the champion image as the production container on a free port."""
    port = container.free_port()
    proc = world.carprice("serve", "--port", str(port), "--workers", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # what serves, where and how to stop it, on stderr; no bare id: scripts read the state file
    assert proc.stdout == "" and f"serves on http://127.0.0.1:{port}" in proc.stderr
    assert production_state(world.home)["port"] == port
    yield port
    world.carprice("serve", "--stop")


def test_serve_runs_the_image_gate_3_tested_with_the_compiled_scorer(world, production):
    champion, bundle = world.production()
    manifest = json.loads((bundle.parent / "manifest.json").read_text())
    model = _get(production, "/readyz")  # what runs: anonymous callers see it on /readyz
    assert model["runtime"] == {"scorer": "compiled", "image_id": manifest["image"]["id"]}
    gate3 = json.loads((bundle.parent / "gate3" / "e2e.json").read_text())
    assert gate3["target"]["id"] == manifest["image"]["id"]
    assert model["model_version"] == manifest["model_version"]


def _new_container_ready(world) -> float:
    """When the container now serving production took the port's new connections, from its own
    log (serving/handover.py), not from when the release command returned."""
    record = production_state(world.home)
    return taken_at(world.engine.logs(record["container"]))


def _assert_switched_cleanly(traffic: Traffic, old: str, new: str, ready: float) -> None:
    """Every request answered 2xx within SLOW_S; per client connection the versions never go
    from new back to old; the old container still answered after the new one took the port
    (`ready`), so it was running then, and yet every request sent after `ready` was the new
    version's."""
    s = traffic.stats
    print(
        f"\nswitch {old} -> {new} under {traffic.connections} connections: {s.requests} "
        f"requests, {len(s.errors)} errors, {len(s.non_2xx)} non-2xx, {len(s.slow)} slower than "
        f"{SLOW_S} s (max {s.max_seconds * 1000:.0f} ms), {s.answered_after(old, ready)} old "
        "answers after the new container took over"
    )
    assert s.requests > 100, s
    assert s.errors == [] and s.non_2xx == [], s
    assert s.slow == [], f"requests slower than {SLOW_S} s: {s.slow}"
    assert s.versions[0] == old and set(s.versions) == {old, new}, s.versions
    assert s.back_to_old(old, new) == []
    assert s.answered_after(old, ready) > 0
    assert s.versions_sent_after(ready) == {new}


def _experiment_start(world, package: Path, e2e: str) -> subprocess.CompletedProcess:
    params = str(world.root / "params.yaml")
    return world.carprice(
        "experiment", "start", "--share", "0.5", "--package", str(package), "--gate3", e2e,
        "--params", params,
    )  # fmt: skip


@pytest.fixture(scope="module")
def second_release(world, second, production) -> str:
    """Release 2, promoted by an A/B experiment against release 1 that the production container
    serves (the champion's image with the challenger's bundle mounted); before it, the same
    package with a tampered bundle is refused. The experiment's stop and the promotion run while
    production answers 8 concurrent connections."""
    params = str(world.root / "params.yaml")
    package = second["PACKAGE"]
    for step in (
        ["package", "--data", second["VALIDATED"], "--out", package, "--params", params],
        ["image", "--package", package],
        ["e2e", "--package", package, "--out", second["E2E"], "--params", params],
    ):
        proc = world.carprice(*step)
        if step[0] == "image":
            world.images.append(json.loads((Path(package) / "image.json").read_text())["tag"])
        assert proc.returncode == 0, proc.stderr[-3000:]
    # the package gate 3 passed, its bundle altered afterwards (and re-signed)
    tampered = world.root / "runs" / "second-tampered"
    shutil.copytree(package, tampered)
    _tamper(tampered / "bundle")
    before = production_state(world.home)["container"]
    refused = _experiment_start(world, tampered, second["E2E"])
    unchanged = production_state(world.home)["container"] == before
    world.switches["refused"] = (refused, unchanged, _get(production, "/readyz"))
    proc = _experiment_start(world, Path(package), second["E2E"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    world.switches["ab"] = (json.loads(proc.stdout), _get(production, "/readyz"))
    weeks = replay_experiment(world.home, production)
    with Traffic(production) as traffic:
        stopped = world.carprice("experiment", "stop")
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    world.switches["stop"] = (traffic, _get(production, "/readyz"), _new_container_ready(world))
    before = _get(production, "/readyz")["model_version"]
    promote_args = ["--gate1", second["VALIDATED"], "--gate2", second["EVALUATION"]]
    promote_args += ["--gate3", second["E2E"], "--params", params, "--by-experiment"]
    with Traffic(production) as traffic:
        proc = world.carprice("promote", "--package", package, *promote_args)
    world.switches["promote"] = (traffic, before, _new_container_ready(world))
    world.switches["experiment"] = (weeks, proc)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_a_challenger_failing_parity_in_the_champion_image_is_refused_with_one_sentence(
    world, second_release
):
    refused, unchanged, ready = world.switches["refused"]
    assert refused.returncode == 1
    [sentence] = [x for x in refused.stderr.splitlines() if x.startswith("experiment refused")]
    assert "fails gate 3 in the champion's image" in sentence and "parity (single)" in sentence
    assert "experiment" not in ready  # production served on as it was, champion alone
    first = promote.history(world.home)[0]["release"]
    assert (
        ready["model_version"]
        == json.loads((promote.releases_dir(world.home) / first / "manifest.json").read_text())[
            "model_version"
        ]
    )
    ab_record, _ = world.switches["ab"]
    store = Store(default_url(world.home))
    try:  # the refused attempt wrote no experiment: the one that ran is the only one
        assert store.latest_experiment()["experiment_id"] == ab_record["experiment_id"]
        assert store.experiment(ab_record["experiment_id"])["stopped_at"] is not None
    finally:
        store.dispose()
    assert unchanged  # no container was started for it


def test_the_production_image_serves_both_arms_and_readyz_shows_each_identity(
    world, second, second_release
):
    record, ready = world.switches["ab"]
    releases = promote.releases_dir(world.home)
    first = json.loads(
        (releases / promote.history(world.home)[0]["release"] / "manifest.json").read_text()
    )
    package = json.loads((Path(second["PACKAGE"]) / "package.json").read_text())
    image = first["image"]["id"]
    assert ready["runtime"]["image_id"] == image
    experiment = ready["experiment"]
    assert (experiment["id"], experiment["share"]) == (record["experiment_id"], 0.5)
    assert experiment["arms"] == {
        "champion": {
            "image_id": image,
            "model_version": first["model_version"],
            "bundle_checksums_sha256": first["bundle_checksums_sha256"],
        },
        "challenger": {
            "image_id": image,
            "model_version": package["model_version"],
            "bundle_checksums_sha256": package["bundle_checksums_sha256"],
        },
    }
    assert record["challenger_version"] == package["model_version"] != first["model_version"]


def test_stopping_the_experiment_returns_to_the_champion_alone_without_a_failed_request(
    world, second_release
):
    traffic, ready, taken = world.switches["stop"]
    s = traffic.stats
    print(
        f"\nexperiment stop under {traffic.connections} connections: {s.requests} requests, "
        f"{len(s.errors)} errors, {len(s.non_2xx)} non-2xx, max {s.max_seconds * 1000:.0f} ms"
    )
    assert s.requests > 100, s
    assert s.errors == [] and s.non_2xx == [] and s.slow == [], s
    assert "experiment" not in ready
    assert any(sent > taken for _, sent, _, _ in s.answers)  # traffic ran past the handover
    record, ab_ready = world.switches["ab"]
    assert ready["runtime"] == ab_ready["runtime"]  # the same image, the challenger gone


def test_a_promote_replaces_production_under_load_without_a_failed_or_slow_request(
    world, second_release, production
):
    traffic, before, ready = world.switches["promote"]
    manifest = json.loads(
        (promote.releases_dir(world.home) / second_release / "manifest.json").read_text()
    )
    _assert_switched_cleanly(traffic, before, manifest["model_version"], ready)
    assert _get(production, "/readyz")["runtime"]["image_id"] == manifest["image"]["id"]


def test_the_gated_challenger_is_promoted_by_the_a_b_experiment(world, second_release):
    weeks, proc = world.switches["experiment"]
    for stats in weeks:
        assert stats.errors == 0, stats.last_error
        assert 0.4 < stats.arms["challenger"] / stats.estimates < 0.6, stats.arms
        assert stats.sold > 100, stats
    manifest = json.loads(
        (promote.releases_dir(world.home) / second_release / "manifest.json").read_text()
    )
    version = manifest["model_version"]
    err = proc.stdout + proc.stderr
    assert f"experiment: {version} is not worse on conversion and realised error" in err
    for metric in ("conversion", "realised_mape"):  # the table printed with the verdicts
        assert f"challenger - champion: {metric}" in err, err
    assert "promotion  allowed" in err
    assert promote.history(world.home)[-1]["release"] == second_release


def test_rollback_reruns_gate_3_and_switches_production_back_under_load(
    world, second_release, production
):
    releases = promote.releases_dir(world.home)
    first = promote.history(world.home)[0]["release"]
    first_manifest = json.loads((releases / first / "manifest.json").read_text())
    old = first_manifest["model_version"]
    new = json.loads((releases / second_release / "manifest.json").read_text())["model_version"]
    assert old != new and world.production()[0] == second_release
    with Traffic(production) as traffic:
        proc = world.carprice("rollback", "--params", str(world.root / "params.yaml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == first
    _assert_switched_cleanly(traffic, new, old, _new_container_ready(world))
    assert _get(production, "/readyz")["runtime"]["image_id"] == first_manifest["image"]["id"]
    assert world.production() == (first, (releases / first / "bundle").resolve())
    entry = promote.history(world.home)[-1]
    assert entry["action"] == "rollback" and entry["previous"] == second_release
    assert entry["gate3_passed"] and Path(entry["gate3"]).exists()
    assert "replaced" in entry["reload"]


def test_reproduce_rebuilds_release_1_with_identical_predictions(world):
    first = promote.history(world.home)[0]["release"]
    proc = world.carprice("reproduce", first, "--out", str(world.root / "reproduce"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((world.root / "reproduce" / f"release-{first}.json").read_text())
    assert result["identical"] and all(result["files"].values())
    assert result["predictions"]["clean rows"]["rows"] > 10_000
