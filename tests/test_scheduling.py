"""The suite's own order (tests/scheduling.py): long tests are spread over the workers."""

from tests.scheduling import core_for, spread


def test_long_tests_are_dealt_over_every_workers_first_run() -> None:
    weights = {f"long{i}": w for i, w in enumerate([600, 600, 420, 300, 300, 300, 240, 120])}
    items = [f"short{i}" for i in range(60)] + list(weights) + [f"short{i}" for i in range(60, 90)]
    order = spread(items, lambda name: weights.get(name, 0.0), workers=4)

    assert sorted(order) == sorted(items)  # every test once
    size = len(items) // 4 // 4  # xdist's first run per worker
    runs = [order[k * size : (k + 1) * size] for k in range(4)]
    loads = [sum(weights.get(name, 0.0) for name in run) for run in runs]
    assert all(run[0].startswith("long") for run in runs)  # each worker starts on a long one
    assert max(loads) - min(loads) <= 300  # no worker holds the long tests alone
    shorts = [name for name in order if name.startswith("short")]
    assert shorts == [name for name in items if name.startswith("short")]  # their own order


def test_one_worker_runs_the_longest_first() -> None:
    weights = {"a": 0.0, "b": 5.0, "c": 9.0}
    order = spread(["a", "b", "c"], weights.__getitem__, workers=1)
    assert order == ["c", "b", "a"]


def test_workers_are_pinned_round_robin_over_the_cores_they_may_use() -> None:
    assert [core_for(f"gw{n}", [0, 1], 5) for n in range(5)] == [0, 1, 0, 1, 0]
    assert [core_for(f"gw{n}", {5, 2}, 3) for n in range(3)] == [2, 5, 2]  # as the OS allows
    assert core_for("gw3", [0], 4) is None  # one core: nothing to choose
    assert core_for("master", [0, 1], 2) is None
    assert core_for("gw0", [0, 1], 1) is None  # one worker: not on one of two cores
