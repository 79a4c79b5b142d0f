"""Du-IN (Zheng et al., NeurIPS 2024): words from sEEG, with discrete-code pre-training.

Du-IN reads ~10 bipolar sEEG channels at 1000 Hz in 3 s trials, cut into 100 ms
patches (30 tokens), and is trained in three stages:

==============  ==========================================================================
stage           what it learns
==============  ==========================================================================
1. VQ-VAE       subject layer → tokenizer → encoder → vector quantiser → decoder → signal;
                loss: reconstruction MSE of the z-scored signal + commitment
2. MAE          a fresh subject layer → tokenizer → encoder predicts, for each masked
                token, the frozen VQ-VAE's code index (cross-entropy)
3. fine-tuning  the stage-2 encoder (stage 1's with ``pretrain="vqvae"``, a fresh one with
                ``"none"``) + a classification head, on the labelled words
==============  ==========================================================================

Modules (shapes for one subject with C channels, B windows of T samples, N = T / 100
tokens; published sizes in brackets, as the authors' code sets them for their sEEG data
set in ``params/duin_params.py`` of github.com/liulab-repository/Du-IN):

- :class:`SubjectLayer`: per-subject linear map C → ``d_neural`` [16] channels (with bias),
  so subjects with different electrodes share everything after it.
- :class:`PatchTokenizer`: per 100-sample patch, Conv1d(→128, k19, s10) + BN →
  Conv1d(→128, k3) + BN → Conv1d(→16, k3) + BN, flattened time-major to ``d_model`` =
  16 × 10 = [160]. As in the reference code, there is no activation between the
  convolutions.
- :class:`TransformerStack`: sin-cos time embedding + post-norm blocks [8 blocks, 8 heads
  of 64, d_ff 320, GELU, attention and feed-forward dropout 0.2].
- :class:`VectorQuantizer`: Linear-Tanh-Linear to ``d_code`` [64], L2-normalised, nearest
  code by cosine in a codebook [2048 × 64] initialised by spherical k-means and updated by
  EMA (decay 0.99, codes renormalised); straight-through gradient; commitment loss
  β·MSE(z, sg(q)) [β = 1]; LayerNorm + Linear back to ``d_model``.
- :class:`RegressionHead`: transposed convolutions over the token axis [128, 128, 128,
  128, 16 filters; kernels 3, 3, 10, 9, 19; strides 1, 1, 10, 1, 10] + Linear to
  ``d_neural``, then a per-subject map back to the subject's channels.
- :class:`DuINMAE`: half the tokens replaced by a learnt mask token; the mask and its
  complement both pass through the encoder, so every token is predicted exactly once,
  from the pass in which it was hidden.
- :class:`DuINNet`: encoder + flatten → Linear(N·d_model → 128) → ReLU → Linear(→ classes).
  The reference code squashes these logits with a sigmoid before the cross-entropy; it
  is left out here because the served probabilities would then be compressed towards
  uniform (at most e / (e + n_classes - 1) for the top word).

Training follows the authors' schedules (:meth:`DuINConfig.published`): AdamW (weight
decay 0.05), per-epoch linear warm-up then half-cosine decay between two learning rates;
VQ-VAE 800 epochs, batch 32, 3e-4 → 5e-5; MAE 400 epochs, batch 64, 3e-4 → 5e-5;
fine-tuning 200 epochs, batch 32, 2e-4 → 5e-6. One difference: k-means initialises the
codebook from the encoder outputs of up to 512 training windows rather than of the first
batch alone, which holds fewer vectors (32 × 30) than the published codebook has codes.
Batches hold one subject each (the reference pads channels to a common count instead).

Live use. The exported graph takes the stream's channels (contacts, in ``ch_names``
order) after the runtime's causal band-pass and notch (:meth:`DuINClassifier.
preprocessing`), and starts with a fixed :class:`FrontEnd`: the bipolar derivation as a
matrix (no runtime node re-references pairs, and a linear map across channels commutes
with the per-channel filters that run before it, so the result equals filtering the
bipolar channels), then the per-channel z-score. The z-score is inside the network for
the same reason: the runtime's nodes are causal filters and have no notion of training
statistics. With ``zscore="fit"`` (default) it uses each bipolar channel's mean and
standard deviation over the training windows — a fixed affine map, the live counterpart of
z-scoring a whole recording as the paper does; ``zscore="window"`` normalises each channel
within each 3 s window instead, which needs no statistics and is immune to gain drift
between sessions but also removes differences in overall power between trials.
"""

from bci.decoders.duin.config import (
    PREDICT_BATCH,
    PRETRAIN,
    ZSCORE,
    DuINConfig,
    StageSchedule,
    resolve_config,
)
from bci.decoders.duin.estimator import DuINClassifier, zscore_stats
from bci.decoders.duin.mae import DuINMAE, random_mask
from bci.decoders.duin.model import (
    Attention,
    DuINEncoder,
    DuINNet,
    FrontEnd,
    PatchTokenizer,
    SubjectLayer,
    TransformerBlock,
    TransformerStack,
    sincos_embedding,
)
from bci.decoders.duin.stages import (
    KMEANS_WINDOWS,
    fine_tune,
    mae_loss,
    train_mae,
    train_vqvae,
    vqvae_codes,
)
from bci.decoders.duin.vqvae import DuINVQVAE, RegressionHead, VectorQuantizer

__all__ = [
    "KMEANS_WINDOWS", "PREDICT_BATCH", "PRETRAIN", "ZSCORE", "Attention", "DuINClassifier",
    "DuINConfig", "DuINEncoder", "DuINMAE", "DuINNet", "DuINVQVAE", "FrontEnd",
    "PatchTokenizer", "RegressionHead", "StageSchedule", "SubjectLayer", "TransformerBlock",
    "TransformerStack", "VectorQuantizer", "fine_tune", "mae_loss", "random_mask",
    "resolve_config", "sincos_embedding", "train_mae", "train_vqvae", "vqvae_codes",
    "zscore_stats",
]
