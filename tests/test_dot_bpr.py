"""`dot_bpr` (BPR with its gradient computed in the forward pass) equals the generic
path: `objective.bpr` over gathered dot products, differentiated by autograd."""

from __future__ import annotations

import pytest
import torch

from movierec.models import dot_bpr as dot_bpr_module
from movierec.models import pair_dot as pair_dot_module
from movierec.models.dot_bpr import dot_bpr, dot_bpr_applies
from movierec.objective import bpr


def _case(n_users=30, n_movies=20, width=6, n_pos=400, n_neg=4, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    z_user = torch.randn(n_users, width, dtype=dtype, generator=generator, requires_grad=True)
    z_movie = torch.randn(n_movies, width, dtype=dtype, generator=generator, requires_grad=True)
    user = torch.randint(n_users, (n_pos,), generator=generator)
    movie = torch.randint(n_movies, (n_pos,), generator=generator)
    negative = torch.randint(n_movies, (n_pos, n_neg), generator=generator)
    return z_user, z_movie, user, movie, negative


def _gathered(z_user, z_movie, user, movie, negative):
    positive = (z_user[user] * z_movie[movie]).sum(-1)
    scores = (z_user[user].unsqueeze(1) * z_movie[negative]).sum(-1)
    return bpr(positive, scores)


@pytest.mark.parametrize(
    ("n_pos", "n_neg", "chunk", "sort_users"),
    [
        (400, 4, 0, False),  # 2,000 pairs over a 30 × 20 grid: split below 600 per product
        (400, 4, 64, True),  # user-ordered pairs: no sort on the user side
        (37, 1, 10, False),  # a last chunk shorter than the others
        (1, 3, 0, False),
    ],
)
def test_value_and_gradients_match_the_gathered_form(n_pos, n_neg, chunk, sort_users):
    z_user, z_movie, user, movie, negative = _case(n_pos=n_pos, n_neg=n_neg, seed=n_pos)
    if sort_users:
        user = user.sort().values
    fused = dot_bpr(z_user, z_movie, user, movie, negative, chunk)
    plain = _gathered(z_user, z_movie, user, movie, negative)
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-12)
    upstream = torch.tensor(0.7, dtype=torch.float64)  # a loss weighted in a larger sum
    fused_grads = torch.autograd.grad(fused, [z_user, z_movie], upstream)
    plain_grads = torch.autograd.grad(plain, [z_user, z_movie], upstream)
    for got, expected in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_float32_matches_float64():
    """float32 tables take the int32 path whose column and gradient are gathered as one
    word (`pair_dot._gather_pairs`): unsorted users make that gather run on both sides."""
    z_user, z_movie, user, movie, negative = _case(n_pos=300, n_neg=3, seed=5)
    single = [z.detach().float().requires_grad_() for z in (z_user, z_movie)]
    loss64 = dot_bpr(z_user, z_movie, user, movie, negative, 50)
    loss32 = dot_bpr(*single, user, movie, negative, 50)
    torch.testing.assert_close(loss32.double(), loss64, rtol=1e-6, atol=1e-6)
    grads64 = torch.autograd.grad(loss64, [z_user, z_movie])
    grads32 = torch.autograd.grad(loss32, single)
    for got, expected in zip(grads32, grads64, strict=True):
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-7)


def test_gradcheck():
    z_user, z_movie, user, movie, negative = _case(8, 5, 3, n_pos=6, n_neg=2)
    assert torch.autograd.gradcheck(
        lambda a, b: dot_bpr(a, b, user, movie, negative, 4), (z_user, z_movie)
    )


def test_it_applies_to_float_tables_on_cpu_only():
    z_user, z_movie, *_ = _case()
    assert dot_bpr_applies(z_user, z_movie, 4)
    assert not dot_bpr_applies(z_user.bfloat16(), z_movie.bfloat16(), 4)
    assert not dot_bpr_applies(z_user[:1], z_movie[:2], 4)  # 2 cells < one positive's 5 pairs


def test_without_autograd_it_gives_the_value_alone():
    z_user, z_movie, user, movie, negative = _case()
    with torch.no_grad():
        loss = dot_bpr(z_user, z_movie, user, movie, negative, 100)
    assert loss.grad_fn is None
    torch.testing.assert_close(loss, _gathered(z_user, z_movie, user, movie, negative).detach())


@pytest.mark.parametrize("n_neg", [1, 2, 3, 4])
def test_float32_word_sort_equals_the_argsort_path(monkeypatch, n_neg):
    """The float32 path groups pairs by movie through sorted words; it must give what
    the argsort + gather path gives, and must actually run (counted)."""
    z_user, z_movie, user, movie, negative = _case(n_pos=500, n_neg=n_neg, seed=11)
    single = [z.detach().float().requires_grad_() for z in (z_user, z_movie)]
    results = []  # what each call returned: the word path ran only if it built the words
    words_by_row = dot_bpr_module.words_by_row
    monkeypatch.setattr(
        dot_bpr_module,
        "words_by_row",
        lambda *args, **kwargs: results.append(words_by_row(*args, **kwargs)) or results[-1],
    )
    loss = dot_bpr(*single, user, movie, negative, 120)
    grads = torch.autograd.grad(loss, single)
    assert len(results) == 2 * 5  # positives and negatives of each of the 5 chunks
    assert all(words is not None for words in results)
    monkeypatch.setattr(dot_bpr_module, "_by_movie_words", lambda *args: None)
    monkeypatch.setattr(pair_dot_module, "words_by_row", lambda *args, **kwargs: None)
    reference = [z.detach().clone().requires_grad_() for z in single]
    expected_loss = dot_bpr(*reference, user, movie, negative, 120)
    expected = torch.autograd.grad(expected_loss, reference)
    assert len(results) == 10  # the argsort path ran instead
    torch.testing.assert_close(loss, expected_loss, rtol=0, atol=0)
    for got, want in zip(grads, expected, strict=True):  # float32 sums in another order
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6 * float(want.abs().max()))
