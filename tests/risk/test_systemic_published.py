"""Eisenberg–Noe clearing and DebtRank (prudencial.risk.systemic) against examples published
elsewhere, with their numbers stated in the source.

Only each example's input numbers and its published results are taken; the code under test is
ours. Every expected value below is the source's, compared at the precision the source prints
(half a unit in its last printed digit). Conventions here: L[i, j] is what i owes j;
impact[i, k] is the share of k's capital lost if i fails.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from prudencial.risk.systemic import ExposureNetwork, debtrank, eisenberg_noe

# --- Eisenberg–Noe --------------------------------------------------------------------------


def test_eisenberg_noe_matches_networkvaluation_three_node_demonstration():
    """Source: C. Siebenbrunner, *NetworkValuation* (MATLAB routines accompanying Puig and
    Siebenbrunner 2018), "Demonstration of the Eisenberg/Noe Algorithm",
    https://github.com/siebenbrunner/NetworkValuation, file
    `Algorithms/Eisenberg and Noe 2001/Example.html` (MATLAB R2017b live script with its
    printed outputs; commit 137c17b78afa32e7791fed51089ff33981ab388b).

    Inputs: external assets vecE = (10, 10, 10); matL = [[0, 20, 10], [5, 0, 24], [10, 0, 0]],
    row i = what node i owes each node (our orientation, no transposition; no outside
    creditor). Published, 5 significant digits (MATLAB format short):
    - equity before clearing, e + Πᵀp̄ − p̄ = (−5, 1, 34), defaulted (1, 0, 0): only node 1;
    - equity after clearing, e + Πᵀp − p̄ = (−5.4545, −2.6364, 30), defaulted (1, 1, 0):
      "the second node is pushed into default through these losses".
    Compared: the equities from our payments and owed amounts; our defaults and waves (node 1
    fundamental = wave 1, node 2 contagious = wave 2, node 3 pays); the payments the published
    equities imply (a defaulter pays all it has, p = p̄ + equity, so (24.5455, 26.3636), and
    node 3 pays its 10); the credit losses they imply (equity before − after:
    (0.4545, 3.6364, 4)).
    """
    liabilities = np.array([[0, 20, 10], [5, 0, 24], [10, 0, 0]], dtype=float)
    external = np.array([10.0, 10.0, 10.0])
    c = eisenberg_noe(sp.csr_matrix(liabilities), external)

    pi = liabilities / liabilities.sum(axis=1, keepdims=True)
    before = external + pi.T @ c.owed - c.owed
    after = external + pi.T @ c.payments - c.owed
    assert c.owed.tolist() == [30.0, 29.0, 10.0]
    assert before == pytest.approx([-5, 1, 34], abs=5e-5)
    assert after == pytest.approx([-5.4545, -2.6364, 30], abs=5e-5)
    assert (c.payments < c.owed).tolist() == [True, True, False]
    assert c.wave.tolist() == [1, 2, 0]
    assert c.payments == pytest.approx([30 - 5.4545, 29 - 2.6364, 10], abs=5e-5)
    published_loss = np.array([-5, 1, 34]) - np.array([-5.4545, -2.6364, 30])
    assert c.credit_loss == pytest.approx(published_loss, abs=1e-4)  # two 5e-5 roundings


# systemicrisk 0.3 vignette: the three sampled liabilities matrices it prints, L[i, j] = what
# bank i owes bank j (its rows sum to the stated interbank liabilities l = (1, 2.5, 3), its
# columns to the interbank assets a = (0.7, 2.7, 3.1)), and the default indicators it prints.
_SYSTEMICRISK_SAMPLES = [
    ([[0.0, 0.4, 0.6], [0.0, 0.0, 2.5], [0.7, 2.3, 0.0]], [1, 0, 0]),  # L[[1]]
    ([[0.0, 0.0, 1.0], [0.4, 0.0, 2.1], [0.3, 2.7, 0.0]], [1, 0, 1]),  # L[[2]]
    ([[0.0, 0.4, 0.6], [0.0, 0.0, 2.5], [0.7, 2.3, 0.0]], [1, 0, 0]),  # L[[3]]
]


@pytest.mark.parametrize(("rows", "defaultind"), _SYSTEMICRISK_SAMPLES)
def test_eisenberg_noe_defaults_match_systemicrisk_vignette(rows, defaultind):
    """Source: A. Gandy and L. A. M. Veraart, R package *systemicrisk* 0.3 (CRAN, 2015-12-21),
    vignette "Some Introductory Examples" ("An example with 3 banks"),
    `inst/doc/Introduction.html`, section "Default of banks": with external assets
    ea = (1, 1, 1) and external liabilities el = (1, 1, 1),
    `default(L[[k]], ea=ea, el=el)$defaultind` prints 1 0 0, 1 0 1 and 1 0 0 for the three
    matrices printed above it (R prints each entry to 7 significant digits: 0.4 is 0.4).

    Mapping: systemicrisk's default method is "clearing", Eisenberg and Noe (2001) without
    bankruptcy costs, with total liabilities rowSums(L) + el; ea is our `external`, el our
    `outside` (owed to a creditor outside the network). Its defaultind (1 = default) is our
    wave > 0. Only the indicators are published (not the clearing vector), so only they are
    compared; the averages over 200 samples that follow in the vignette need the unpublished
    samples and are not.
    """
    c = eisenberg_noe(sp.csr_matrix(np.array(rows)), np.ones(3), outside=np.ones(3))
    assert (c.wave > 0).astype(int).tolist() == defaultind


# --- DebtRank -------------------------------------------------------------------------------

# Voutilainen's example network (Battiston et al. 2012, SI Fig. 5, edges flipped): (source,
# target, equity investment) — the source holds that much of the target, which it loses if the
# target fails. Node labels 1–8 are indices 0–7 here.
_INVESTMENTS = [(2, 1, 4), (5, 2, 3), (7, 5, 5), (2, 5, 2), (3, 1, 6), (4, 1, 3), (6, 4, 2)]
_INVESTMENTS += [(8, 6, 7), (5, 6, 2)]
_EQUITY = np.array([14, 6, 56, 8, 15, 9, 90, 50], dtype=float)  # as printed, node 1 first


def _voutilainen_network():
    n = _EQUITY.size
    owed = np.zeros((n, n))  # owed[target, source]: what the source loses if the target fails
    for source, target, amount in _INVESTMENTS:
        owed[target - 1, source - 1] = amount
    invested = owed.sum(axis=0)  # A_j: what each node invested
    return owed, invested / invested.sum()


def test_debtrank_matches_voutilainen_example_with_equity_weights():
    """Source: V. Voutilainen, "An example of the DebtRank algorithm (Battiston et. al., 2012)",
    Quarto notebook, https://vvoutilainen.github.io/assets/notebooks/debtrank_example.html
    (repository vvoutilainen/vvoutilainen.github.io, commit
    a3a1e69cc97f55eca3410d81c38fa208c3a699ed), section "Examples", first run. The network is
    that of Figure 5 of the Supplementary Information of Battiston, Puliga, Kaushik, Tasca and
    Caldarelli (2012), "DebtRank: Too central to fail?", Sci. Rep. 2:541, with edges flipped to
    read as equity investments; the SI itself could not be retrieved here, so the figures
    compared are the notebook's.

    Inputs: the nine investments above; equities (14, 6, 56, 8, 15, 9, 90, 50); impact
    W_ij = min(1, A_ji / E_j) of i on j; node 1 fails (h = 1), nothing else shocked; weights
    v_k = A_k / Σ A (share of all investments, printed 0, 0.176471, 0.176471, 0.088235,
    0.147059, 0.058824, 0.147059, 0.205882). Published (6 decimals): h(T) = (1, 0.711111,
    0.107143, 0.375, 0.144444, 0.083333, 0.007407, 0.011667); DebtRank R = Σ v h(T) − Σ v h(1)
    = 0.207 (3 decimals).

    Mapping: the notebook's dynamics are Battiston's (a node passes distress on only the first
    time, its text says so), our `battiston` method. A target "owes" each investor its
    investment, so L[target, investor] = A; our ExposureNetwork.impact() then gives
    W[i, k] = min(1, L[i, k] / E[k]), the notebook's W_ij. The notebook's h(1) is the initial
    shock (h_init), so R = v·h(T) − v·h0. Nodes 2 and 5 invest in each other: the fixed point
    would let distress reverberate there, so it is not compared.
    """
    owed, v = _voutilainen_network()
    assert v == pytest.approx(
        [0, 0.176471, 0.176471, 0.088235, 0.147059, 0.058824, 0.147059, 0.205882], abs=5e-7
    )
    net = ExposureNetwork(
        pld=0.0, liabilities=sp.csr_matrix(owed), capital=_EQUITY, intrinsic_loss=np.zeros(8)
    )
    h0 = np.eye(8)[0]
    run = debtrank(net.impact(), h0)
    published = [1.0, 0.711111, 0.107143, 0.375, 0.144444, 0.083333, 0.007407, 0.011667]
    assert run.distress == pytest.approx(published, abs=5e-7)
    assert v @ run.distress - v @ h0 == pytest.approx(0.207, abs=5e-4)
    assert run.converged


def test_debtrank_matches_voutilainen_example_with_impacts_at_one_half():
    """Source: as above (Voutilainen, DebtRank example notebook, commit
    a3a1e69cc97f55eca3410d81c38fa208c3a699ed), second run: "the impact matrix as in Figure 5
    of the main reference supplementary material; that is, all impacts have been forced to
    0.5" — every investment above becomes an impact of 0.5 of the target on the investor.
    Node 1 fails; same weights v. Published (3 decimals): h(T) = (1, 0.625, 0.5, 0.5, 0.375,
    0.25, 0.125, 0.125); DebtRank R = 0.357. Mapping as in the first run (Battiston's method,
    impact[target, investor] = 0.5, R = v·h(T) − v·h0).
    """
    owed, v = _voutilainen_network()
    impact = sp.csr_matrix(np.where(owed > 0, 0.5, 0.0))
    h0 = np.eye(8)[0]
    run = debtrank(impact, h0)
    published = [1.0, 0.625, 0.5, 0.5, 0.375, 0.25, 0.125, 0.125]
    assert run.distress == pytest.approx(published, abs=5e-4)
    assert v @ run.distress - v @ h0 == pytest.approx(0.357, abs=5e-4)
