"""`pair_dot` (sampled sparse products) computes the gathered-rows dot product it replaces."""

from __future__ import annotations

import pytest
import torch

from movierec.models import pair_dot as pair_dot_module
from movierec.models.decoders import BilinearDecoder, DotDecoder
from movierec.models.pair_dot import pair_dot, words_by_row


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


def _entries_by_row(crow, col, value):
    """Sorted (row, col, value bits) of a CSR's parts: bit patterns compare NaNs too."""
    row = torch.repeat_interleave(torch.arange(len(crow) - 1), crow.diff())
    bits = value.view(torch.int32)
    return sorted(zip(row.tolist(), col.tolist(), bits.tolist(), strict=True))


@pytest.mark.parametrize("value_bits", [32, 30])
def test_words_by_row_lays_entries_out_by_row_with_their_columns_and_values(value_bits):
    generator = torch.Generator().manual_seed(7)
    n_rows, size = 50, 4_000
    rows = torch.randint(n_rows, (size,), generator=generator, dtype=torch.int32)
    cols = torch.randint(100, 300, (size,), generator=generator)  # int64, offset from 0
    if value_bits == 32:  # any float32, sign, NaN and infinities included
        values = torch.randn(size, generator=generator) * 1e3
        special = [0.0, -0.0, float("nan"), float("inf"), -float("inf"), -1e-40, 3e38, -2.5]
    else:  # [0, 2)
        values = torch.rand(size, generator=generator) * 2
        special = [0.0, 1.0, 1e-40, 1.5, 1.9999999, 0.5, 0.25, 1e-30]
    values[: len(special)] = torch.tensor(special)
    crow, col, value = words_by_row(rows, cols, values, n_rows, value_bits)
    assert crow.dtype == col.dtype == torch.int32 and value.dtype == torch.float32
    assert torch.equal(crow.diff(), torch.bincount(rows, minlength=n_rows).int())
    for start, stop in zip(crow[:-1].tolist(), crow[1:].tolist(), strict=True):
        assert col[start:stop].tolist() == sorted(col[start:stop].tolist())
    expected = _entries_by_row(*_csr_parts_of(rows, cols, values, n_rows))
    assert _entries_by_row(crow, col, value) == expected


def _csr_parts_of(rows, cols, values, n_rows):
    order = torch.argsort(rows, stable=True)
    crow = torch.zeros(n_rows + 1, dtype=torch.int64)
    torch.cumsum(torch.bincount(rows, minlength=n_rows), 0, out=crow[1:])
    return crow, cols[order], values[order]


@pytest.mark.parametrize(
    ("case", "value_bits"),
    [
        ("nan", 30),
        ("negative", 30),
        ("two", 30),
        ("wide", 30),
        ("wide", 32),
        ("empty", 32),
        ("int32 column", 32),
    ],
)
def test_words_by_row_refuses_what_a_word_cannot_hold(case, value_bits):
    rows = torch.tensor([0, 3, 1], dtype=torch.int32)
    cols = torch.tensor([5, 2, 9], dtype=torch.int32)
    values = torch.tensor([0.5, 0.25, 1.0])
    n_rows = 50
    span_bits = 14 if value_bits == 30 else 16  # the most that fits beside the rows
    if case == "wide":  # rows 20 bits + span 15 > 34; 16 + 17 > 32
        n_rows, cols[2] = (2**20 if value_bits == 30 else 2**16), 2 + 2**span_bits
    elif case == "empty":
        rows, cols, values = rows[:0], cols[:0], values[:0]
    elif case == "int32 column":  # a narrow span, but columns past the int32 indices
        cols = cols.long() + 2**31
    else:
        values[1] = {"nan": float("nan"), "negative": -0.25, "two": 2.0}[case]
    assert words_by_row(rows, cols, values, n_rows, value_bits) is None
    if case == "wide":  # a span one shorter fits (the smallest column is 2), with the
        cols[2] = 1 + 2**span_bits  # last row in the word's top (sign) bit
        rows[0] = n_rows - 1
        crow, col, value = words_by_row(rows, cols, values, n_rows, value_bits)
        expected = _entries_by_row(*_csr_parts_of(rows, cols, values, n_rows))
        assert _entries_by_row(crow, col, value) == expected


def test_float32_word_sort_equals_the_argsort_path(monkeypatch):
    """float32 gradients reach the movie table through sorted words; that must give what
    the argsort + gather path gives, and must actually run (counted)."""
    z_user, z_movie = (z.detach().float().requires_grad_() for z in _tables(seed=3))
    generator = torch.Generator().manual_seed(3)
    user = torch.randint(30, (500,), generator=generator)
    movie = torch.randint(20, (500,), generator=generator)
    upstream = torch.randn(500, generator=generator)
    results = []  # what each call returned: the word path ran only if it built the words
    monkeypatch.setattr(
        pair_dot_module,
        "words_by_row",
        lambda *args, **kwargs: results.append(words_by_row(*args, **kwargs)) or results[-1],
    )
    grads = torch.autograd.grad(pair_dot(z_user, z_movie, user, movie), [z_user, z_movie], upstream)
    assert len(results) == 1 and results[0] is not None
    monkeypatch.setattr(pair_dot_module, "words_by_row", lambda *args, **kwargs: None)
    expected = torch.autograd.grad(
        pair_dot(z_user, z_movie, user, movie), [z_user, z_movie], upstream
    )
    torch.testing.assert_close(grads[0], expected[0], rtol=0, atol=0)  # the user side
    scale = float(expected[1].abs().max())  # float32 sums in another order
    torch.testing.assert_close(grads[1], expected[1], rtol=1e-5, atol=1e-6 * scale)


def test_pair_dot_cannot_be_differentiated_twice():
    z_user, z_movie = (z.detach().float().requires_grad_() for z in _tables())
    user, movie = torch.tensor([1, 2, 1]), torch.tensor([0, 4, 4])
    upstream = torch.ones(3, requires_grad=True)
    (grad_movie,) = torch.autograd.grad(
        pair_dot(z_user, z_movie, user, movie), z_movie, upstream, create_graph=True
    )
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        grad_movie.sum().backward()
