"""The order a bench job measures its points in."""

from edgelaw.core.config import defaults
from edgelaw.measure.schedule import schedule
from edgelaw.measure.settings import Settings


def sweeps(shuffle: bool, workload: str = "tokens") -> list[list]:
    bench = {**defaults("bench"), "shuffle": shuffle, "repetitions": 3}
    points = [p for p in schedule(Settings.from_config(bench, workload), workload) if not p["warmup"]]
    return [[p["x"] for p in points if p["rep"] == r] for r in range(3)]


def test_each_repetition_is_the_whole_sweep_in_an_order_of_its_own_drawn_the_same_every_time():
    reps = sweeps(shuffle=True)
    in_order = sweeps(shuffle=False)[0]
    assert all(sorted(r) == sorted(in_order) for r in reps)
    assert len({tuple(r) for r in reps}) == 3  # three repetitions, three orders
    assert sweeps(shuffle=True) == reps  # seeded: a rerun measures in the same order


def test_without_shuffle_every_repetition_follows_the_sweep():
    bench = defaults("bench")
    reps = sweeps(shuffle=False)
    assert reps == [list(bench["prompt_tokens"])] * 3


def test_the_resolution_sweep_is_shuffled_too():
    shuffled, ordered = sweeps(True, "resolution"), sweeps(False, "resolution")
    assert [sorted(r) for r in shuffled] == [sorted(r) for r in ordered]
    assert shuffled != ordered
