"""Clients carry a kind: `market` by default, `synthetic` for the release tooling's own calls
(load tests, gate 3) and for any client added with `--kind synthetic`."""

from __future__ import annotations

import json

import pytest

from carprice.cli.main import main
from carprice.release.target import GATE3_CLIENT, _add_local_client
from carprice.runtime.clients import temporary_client
from carprice.runtime.store import DB_FILE, Store


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CARPRICE_HOME", str(tmp_path))
    monkeypatch.delenv("CARPRICE_DB_URL", raising=False)
    monkeypatch.delenv("CARPRICE_DB_PREFIX", raising=False)
    return tmp_path


def kinds(capsys) -> dict[str, str]:
    capsys.readouterr()
    assert main(["clients", "list", "--json"]) == 0
    return {row["name"]: row["kind"] for row in json.loads(capsys.readouterr().out)}


def test_clients_add_takes_a_kind_and_list_shows_it(home, capsys):
    assert main(["clients", "add", "acme", "--scopes", "estimate"]) == 0
    assert main(["clients", "add", "probe", "--scopes", "estimate", "--kind", "synthetic"]) == 0
    assert kinds(capsys) == {"acme": "market", "probe": "synthetic"}
    assert main(["clients", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["name", "kind"]
    assert [line.split()[:2] for line in table[1:]] == [["acme", "market"], ["probe", "synthetic"]]
    with pytest.raises(SystemExit) as refused:
        main(["clients", "add", "odd", "--scopes", "estimate", "--kind", "robot"])
    assert refused.value.code == 2
    assert "invalid choice: 'robot'" in capsys.readouterr().err


def test_the_release_toolings_clients_are_synthetic(home, capsys):
    _add_local_client(home)  # gate 3's, on a local target
    store = Store(f"sqlite:///{home / DB_FILE}")
    try:
        with temporary_client(store, "loadtest"):
            pass
    finally:
        store.dispose()
    found = kinds(capsys)
    assert found.pop(GATE3_CLIENT) == "synthetic"
    assert [k for name, k in found.items() if name.startswith("loadtest-")] == ["synthetic"]
