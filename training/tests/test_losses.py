from __future__ import annotations

import math

import pytest
import torch

from asm_fer.method.losses import consistency, mutual, mutual_weight, supervised, symmetric_kl


def test_lambda_ramp_check_values() -> None:
    assert mutual_weight(11, 100) == pytest.approx(0.545, abs=1e-3)
    assert mutual_weight(90, 100) == pytest.approx(0.9)
    assert mutual_weight(100, 100) == pytest.approx(0.9)
    assert mutual_weight(1, 100) < mutual_weight(50, 100) < mutual_weight(89, 100)


def test_symmetric_kl_is_zero_for_equal_inputs_and_positive_otherwise() -> None:
    a = torch.randn(5, 8)
    assert float(symmetric_kl(a, a.clone())) == pytest.approx(0.0, abs=1e-6)
    assert float(symmetric_kl(a, torch.randn(5, 8))) > 0


def test_symmetric_kl_matches_a_hand_computed_case() -> None:
    p, q = torch.tensor([[0.75, 0.25]]), torch.tensor([[0.5, 0.5]])
    expected = 0.5 * (
        sum(x * math.log(x / y) for x, y in ((0.75, 0.5), (0.25, 0.5)))
        + sum(y * math.log(y / x) for x, y in ((0.75, 0.5), (0.25, 0.5)))
    )
    assert float(symmetric_kl(p.log(), q.log())) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("detach", [False, True])
def test_mutual_gradient_reaches_both_networks(detach: bool) -> None:
    a = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(4, 3, requires_grad=True)
    mutual(a, b, torch.tensor([0, 1, 2, 0]), lam=0.9, detach=detach).backward()
    assert a.grad is not None and b.grad is not None
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_kl_without_detach_sends_gradient_through_both_terms() -> None:
    a = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(4, 3)
    symmetric_kl(a, b).backward()
    g_full = a.grad.clone()  # type: ignore[union-attr]
    a.grad = None
    symmetric_kl(a, b, detach=True).backward()
    assert not torch.allclose(g_full, a.grad)  # type: ignore[arg-type]


def test_consistency_is_zero_for_identical_views() -> None:
    w = [torch.randn(6, 8), torch.randn(6, 8)]
    assert float(consistency(w, [x.clone() for x in w])) == 0.0
    assert float(consistency(w, [torch.randn(6, 8), torch.randn(6, 8)])) > 0


def test_empty_subsets_give_zero_not_nan() -> None:
    empty = torch.zeros(0, 8, requires_grad=True)
    labels = torch.zeros(0, dtype=torch.long)
    for value in (
        supervised([empty, empty], labels),
        symmetric_kl(empty, empty),
        mutual(empty, empty, labels, 0.5),
        consistency([empty], [empty]),
    ):
        assert float(value) == 0.0 and not torch.isnan(value)
        value.backward()


def test_consistency_equals_a_hand_computed_mse_over_classes() -> None:
    # two networks, one sample, two classes: MSE is the mean over the (1, 2) entries, not their sum
    weak = [torch.tensor([[0.75, 0.25]]).log(), torch.tensor([[0.5, 0.5]]).log()]
    strong = [torch.tensor([[0.25, 0.75]]).log(), torch.tensor([[0.9, 0.1]]).log()]
    mse_1 = ((0.75 - 0.25) ** 2 + (0.25 - 0.75) ** 2) / 2
    mse_2 = ((0.5 - 0.9) ** 2 + (0.5 - 0.1) ** 2) / 2
    assert float(consistency(weak, strong)) == pytest.approx(0.5 * (mse_1 + mse_2), rel=1e-5)


def test_lambda_follows_the_schedule_length_it_is_given() -> None:
    # a 20-epoch schedule: lambda(t) = 0.9 exp(-0.65 (1 - t / 18)^2), held at 0.9 from t = 18
    for t in (1, 5, 12, 18, 20):
        expected = 0.9 * math.exp(-0.65 * (1 - min(t / 18, 1.0)) ** 2)
        assert mutual_weight(t, 20) == pytest.approx(expected)


def test_supervised_takes_vote_distributions_as_targets() -> None:
    logits = [torch.randn(5, 4, generator=torch.Generator().manual_seed(3))]
    labels = torch.tensor([0, 1, 2, 3, 1])
    one_hot = torch.nn.functional.one_hot(labels, 4).float()
    assert torch.allclose(supervised(logits, one_hot), supervised(logits, labels))
    shares = torch.tensor([[0.6, 0.4, 0, 0], [0, 1, 0, 0], [0.1, 0.2, 0.7, 0], [0, 0, 0.5, 0.5], [0.25] * 4])
    by_hand = -(shares * torch.log_softmax(logits[0], 1)).sum(1).mean()
    assert torch.allclose(supervised(logits, shares), by_hand)
