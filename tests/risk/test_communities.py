import itertools

import numpy as np
import pytest

from prudencial.risk import Market, detect_communities, trade_graph


def two_cliques() -> Market:
    edges = [e for base in (0, 5) for e in itertools.combinations(range(base, base + 5), 2)]
    edges.append((4, 5))  # the bridge
    seller, buyer = np.array(edges).T
    return Market(
        agent_ids=[f"A{i}" for i in range(10)],
        classes=np.array(["CM"] * 10),
        generation=np.zeros(10),
        consumption=np.zeros(10),
        seller=seller,
        buyer=buyer,
        volume=np.ones(len(edges)),
        price=np.full(len(edges), 100.0),
    )


@pytest.mark.parametrize("method", ["fastgreedy", "louvain", "leiden"])
def test_two_cliques_give_two_communities(method):
    result = detect_communities(two_cliques(), method, seed=1)
    assert result.n_communities == 2
    # Q = 2·(10/21 − (21/42)²) = 0.452381
    assert result.modularity == pytest.approx(0.452381, abs=1e-6)
    assert len(set(result.membership[:5])) == 1 and len(set(result.membership[5:])) == 1
    assert result.membership[0] != result.membership[9]


def test_parallel_and_reciprocal_contracts_are_summed():
    m = Market(
        agent_ids=["A", "B", "C"],
        classes=np.array(["GE", "CM", "CS"]),
        generation=np.zeros(3),
        consumption=np.zeros(3),
        seller=np.array([0, 0, 1, 1]),
        buyer=np.array([1, 1, 0, 2]),
        volume=np.array([10.0, 5.0, 2.0, 7.0]),
        price=np.full(4, 1.0),
    )
    g = trade_graph(m)
    assert g.ecount() == 2
    assert sorted(g.es["weight"]) == [7.0, 17.0]


def test_unknown_method():
    with pytest.raises(ValueError, match="community_method"):
        detect_communities(two_cliques(), "girvan")
