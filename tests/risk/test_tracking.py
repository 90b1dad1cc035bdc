"""Communities across weeks: each event kind on hand-built weeks (prudencial.risk.tracking)."""

import pytest

from prudencial.risk.tracking import compare_weeks, jaccard, track_communities


def _week(**groups):
    """{agent: community} from community=“agents” strings, e.g. _week(a="A B C")."""
    out = {}
    for community, agents in groups.items():
        for agent in agents.split():
            out[agent] = None if community == "none" else community
    return out


def _kinds(transition):
    return sorted((e["kind"], tuple(e["from"]), tuple(e["to"])) for e in transition.events)


def test_jaccard():
    assert jaccard(frozenset("ab"), frozenset("bc")) == pytest.approx(1 / 3)
    assert jaccard(frozenset(), frozenset()) == 0.0


def test_continuation_keeps_the_lineage_despite_a_new_label():
    # Same members under another label (labels are renumbered every week).
    t = compare_weeks(_week(x="A B C D"), _week(y="A B C E"))
    assert _kinds(t) == [("continuation", ("x",), ("y",))]
    assert t.links[0]["jaccard"] == pytest.approx(3 / 5)
    tracking = track_communities([("W1", _week(x="A B C D")), ("W2", _week(y="A B C E"))])
    assert tracking.lineage_history["A"] == ["L1", "L1"]
    assert tracking.lineage_history["E"] == [None, "L1"]
    assert tracking.history["D"] == ["x", None]


def test_split_the_larger_part_keeps_the_name():
    before = _week(x="A B C D E F")
    after = _week(p="A B C D", q="E F")
    t = compare_weeks(before, after, threshold=0.3)
    assert _kinds(t) == [("split", ("x",), ("p", "q"))]
    tracking = track_communities({"W1": before, "W2": after})
    assert tracking.lineage_history["A"] == ["L1", "L1"]
    assert tracking.lineage_history["E"] == ["L1", "L2"]


def test_merge():
    before = _week(x="A B C", y="D E")
    after = _week(z="A B C D E")
    t = compare_weeks(before, after)
    assert _kinds(t) == [("merge", ("x", "y"), ("z",))]
    tracking = track_communities([("W1", before), ("W2", after)])
    # The larger predecessor's lineage survives the merge.
    assert {tracking.lineage_history[a][1] for a in "ABCDE"} == {"L1"}


def test_birth_and_death():
    before = _week(x="A B C", y="D E F")
    after = _week(x="A B C", w="G H I")
    t = compare_weeks(before, after)
    assert _kinds(t) == [
        ("birth", (), ("w",)),
        ("continuation", ("x",), ("x",)),
        ("death", ("y",), ()),
    ]
    assert t.count("birth") == 1 and t.count("death") == 1
    tracking = track_communities([("W1", before), ("W2", after)])
    assert tracking.lineage_history["G"] == [None, "L3"]


def test_threshold_decides_whether_an_overlap_is_a_link():
    before = _week(x="A B C D")
    after = _week(y="A E F G")  # Jaccard 1/7
    assert _kinds(compare_weeks(before, after, threshold=0.3)) == [
        ("birth", (), ("y",)),
        ("death", ("x",), ()),
    ]
    assert _kinds(compare_weeks(before, after, threshold=0.1)) == [("continuation", ("x",), ("y",))]


def test_flows_count_agents_between_communities_and_out_of_them():
    t = compare_weeks(_week(x="A B C", none="D"), _week(x="A B", y="D", none="C"))
    flows = {(f["from"], f["to"]): f["agents"] for f in t.flows}
    assert flows == {("x", "x"): 2, ("x", None): 1, (None, "y"): 1}


def test_agent_history_over_three_weeks():
    weeks = [
        ("202301001", {"A": 0, "B": 0, "C": 1, "D": 1}),
        ("202301002", {"A": 1, "B": 1, "C": 0, "D": 0}),
        ("202301003", {"A": 0, "B": 0, "C": None, "D": 0}),
    ]
    tracking = track_communities(weeks)
    assert tracking.agent_history("A") == [
        ("202301001", 0, "L1"),
        ("202301002", 1, "L1"),
        ("202301003", 0, "L1"),
    ]
    data = tracking.to_dict()
    assert data["weeks"] == ["202301001", "202301002", "202301003"]
    # {C, D} → {A, B, D}: Jaccard 1/4, below 0.3, so {C, D} dies; at 0.25 it merges.
    assert (data["counts"][1]["merge"], data["counts"][1]["death"]) == (0, 1)
    assert track_communities(weeks, threshold=0.25).to_dict()["counts"][1]["merge"] == 1
    assert data["agents"]["C"]["community"] == [1, 0, None]


@pytest.mark.parametrize(
    ("weeks", "message"),
    [
        ([], "at least one week"),
        ([("W1", {"A": 0}), ("W1", {"A": 0})], "repeat"),
        ([("W1", {"A": 1.5})], r"weeks\[0\]\[A\]: community"),
        ([("W1", ["A"])], r"weeks\[0\] must be a mapping"),
        ([("W1",)], r"weeks\[0\] must be"),
    ],
)
def test_bad_input_names_the_week_and_rule(weeks, message):
    with pytest.raises(ValueError, match=message):
        track_communities(weeks)


def test_threshold_must_be_a_fraction():
    with pytest.raises(ValueError, match="threshold"):
        track_communities([("W1", {"A": 0})], threshold=0)
