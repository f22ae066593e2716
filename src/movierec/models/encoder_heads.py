"""The outputs a message-passing encoder family (SAGE, GCN) puts on its encoded tables.

Both families decode the same way: the rating decoder `model.net.decoder` (mlp | dot |
bilinear | softmax, `models.decoders`) over the (N, width) user and movie tables, the
optional offsets b_u + b_m (`model.net.bias`) and the optional ranking output
(`model.net.ranking`, `models.ranking_output`). Only the encoder differs.
"""

from __future__ import annotations

import torch

from movierec.data.graph import GraphSchema
from movierec.models.base import NodeEmbeddings, RatingScores
from movierec.models.decoders import PairBias, build_decoder, decode_with_bias, decoder_args
from movierec.models.heads import DecoderHead
from movierec.models.ranking_output import WithRankingOutput

#: the losses a family supports once its decoder is the softmax over rating levels
SOFTMAX_LOSSES = ("cross_entropy", "mse", "huber")


class EncoderHeads(WithRankingOutput):
    """Mixin of a `RatingNet` (listed before it): the decoder, bias and ranking output
    over its encoder's tables, and the `decode` and `scoring_head` they make."""

    def attach_heads(
        self, schema: GraphSchema, width: int, decoder: str, decoder_hidden: list[int],
        n_basis: int, bias: bool, ranking: tuple[str, int, float, int],
    ) -> None:  # fmt: skip
        """Build the heads over `width`-wide tables.

        Args:
            decoder: mlp | dot | bilinear | softmax (over rating levels, train with
                `model.objective.loss=cross_entropy`).
            decoder_hidden: widths of the MLP decoder's hidden layers.
            n_basis: shared bases of the softmax decoder.
            bias: add learned user and movie offsets b_u + b_m to the predicted rating.
            ranking: (kind, dim, weight, negatives) of `model.net.ranking*`: none (rank by
                the predicted rating) | dot (a second output, a ranking score trained with
                BPR on the shared encoder, `models.ranking_output`); that output's width,
                the weight λ of its BPR term, unrated movies drawn per positive.
        """
        self.decoder_args = decoder_args(decoder, width, schema, list(decoder_hidden), n_basis)
        self.decoder = build_decoder(**self.decoder_args)
        self.bias = PairBias(schema.n_users, schema.n_movies) if bias else None
        if decoder == "softmax":
            self.supported_losses = SOFTMAX_LOSSES
        self.attach_ranking(*ranking[:1], self.decoder_args["channels"], *ranking[1:],
                            schema.n_movies)  # fmt: skip

    def decode(
        self, embeddings: NodeEmbeddings, user: torch.Tensor, movie: torch.Tensor
    ) -> RatingScores:
        return RatingScores(
            *decode_with_bias(
                self.decoder, self.bias, embeddings.user, embeddings.movie, user, movie,
                embeddings.new_user_bias,
            )
        )  # fmt: skip

    def scoring_head(self) -> DecoderHead:
        return DecoderHead.sharing(self.decoder_args, self.decoder, self.bias, self.ranking)
