"""`pair_dot` (sampled sparse products) computes the gathered-rows dot product it replaces."""

from __future__ import annotations

import pytest
import torch

from movierec.models.decoders import BilinearDecoder, DotDecoder
from movierec.models.pair_dot import pair_dot


def _plain(z_user, z_movie, user, movie):
    return (z_user[user] * z_movie[movie]).sum(dim=-1)


def _tables(n_users=30, n_movies=20, width=6, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    z_user = torch.randn(n_users, width, dtype=dtype, generator=generator, requires_grad=True)
    z_movie = torch.randn(n_movies, width, dtype=dtype, generator=generator, requires_grad=True)
    return z_user, z_movie


# 700 pairs: more than the 30 × 20 cells, which takes the plain form
@pytest.mark.parametrize("n_pairs", [1, 7, 400, 599, 600, 700])
def test_values_and_gradients_match_the_gathered_form(n_pairs):
    z_user, z_movie = _tables()
    generator = torch.Generator().manual_seed(n_pairs)
    # 400 pairs over a 30 × 20 grid: many repeats, in no order
    user = torch.randint(30, (n_pairs,), generator=generator)
    movie = torch.randint(20, (n_pairs,), generator=generator)
    upstream = torch.randn(n_pairs, dtype=torch.float64, generator=generator)
    fast = pair_dot(z_user, z_movie, user, movie)
    plain = _plain(z_user, z_movie, user, movie)
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-12)
    fast_grads = torch.autograd.grad(fast, [z_user, z_movie], upstream)
    plain_grads = torch.autograd.grad(plain, [z_user, z_movie], upstream)
    for got, expected in zip(fast_grads, plain_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_gradcheck():
    z_user, z_movie = _tables(8, 5, 3)
    user = torch.tensor([0, 7, 3, 3, 0, 5])
    movie = torch.tensor([4, 0, 2, 2, 1, 4])
    assert torch.autograd.gradcheck(lambda a, b: pair_dot(a, b, user, movie), (z_user, z_movie))


def test_a_table_without_grad_gets_none_and_the_other_its_gradient():
    z_user, z_movie = _tables()
    frozen = z_movie.detach()
    user, movie = torch.tensor([1, 2, 1]), torch.tensor([0, 0, 5])
    pair_dot(z_user, frozen, user, movie).sum().backward()
    expected = torch.zeros_like(z_user)
    expected[1] = frozen[0] + frozen[5]
    expected[2] = frozen[0]
    torch.testing.assert_close(z_user.grad, expected)


def test_half_precision_and_empty_batches_take_the_gathered_form():
    z_user, z_movie = _tables(dtype=torch.bfloat16)
    user, movie = torch.tensor([3, 4]), torch.tensor([1, 2])
    torch.testing.assert_close(
        pair_dot(z_user, z_movie, user, movie), _plain(z_user, z_movie, user, movie)
    )
    empty = torch.zeros(0, dtype=torch.int64)
    assert pair_dot(*_tables(), empty, empty).shape == (0,)


def test_dot_and_bilinear_decoders_use_it_and_keep_their_formulas():
    z_user, z_movie = _tables(width=4)
    user, movie = torch.tensor([0, 5, 5, 9]), torch.tensor([3, 3, 19, 0])
    dot, _ = DotDecoder(3.5)(z_user, z_movie, user, movie)
    torch.testing.assert_close(dot, 3.5 + _plain(z_user, z_movie, user, movie))
    bilinear = BilinearDecoder(4, 3.5).double()
    with torch.no_grad():
        bilinear.weight.copy_(torch.randn(4, 4, dtype=torch.float64))
    expected = 3.5 + torch.einsum("bi,ij,bj->b", z_user[user], bilinear.weight, z_movie[movie])
    torch.testing.assert_close(bilinear(z_user, z_movie, user, movie)[0], expected)
