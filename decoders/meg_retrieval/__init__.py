"""MEG → image retrieval (Benchetrit, Banville & King, ICLR 2024) with the brain module of
Défossez, Caucheteux, Rapin, Kabeli & King (Nat. Mach. Intell. 2023).

A window of MEG around an image onset (−0.5 … 1.0 s at 120 Hz, 180 samples) is mapped
to an embedding of the image by a pretrained vision model (CLIP or DINOv2; here read
from ``.npy`` files, see :mod:`bci.datasets.meg`); the image is then retrieved among a bank of
candidates by cosine similarity.

Brain module (:class:`BrainModule`), for windows ``(batch, n_sensors, n_times)``:

=====================================================  ======================================
stage                                                  output
=====================================================  ======================================
spatial attention: Fourier embedding of each sensor's  V virtual channels × T
2-D position (K² frequency pairs, cos and sin: 2K²
features), one learned query per virtual channel
(per sensor kind), softmax over sensors; in training
the sensors in a random disc of radius 0.2 are dropped
1×1 convolution, no activation                          V × T
per-subject linear layer (V × V, identity at start)    V × T
``n_blocks`` residual dilated blocks: two k=3          H × T
convolutions (dilations 2^(2i mod 5), 2^(2i+1 mod 5)),
each batch norm + GELU with a residual connection
(not the very first), then a k=3 convolution to 2H
and a GLU
1×1 conv to 2H, GELU, 1×1 conv to F'                   F' × T
learned affine aggregation over time (T → 1)           F'
two heads, LayerNorm → GELU → Linear: CLIP, MSE        F each (the image embedding size)
=====================================================  ======================================

Loss: ``λ · CLIP + (1 − λ) · MSE``. CLIP is the symmetric InfoNCE of Radford et al.
(2021) between the CLIP head's outputs and the image embeddings of the batch, cosine
similarities times a learned temperature; windows of the same image count as positives
of each other. MSE regresses the MSE head onto the embeddings standardised per
dimension (so that λ means the same whatever the embedding's scale). Retrieval uses the
CLIP head, as in the paper; the MSE head is what an image generator would be fed.

Preprocessing (baseline over the 0.5 s before onset, robust scaling per channel fitted
on the training windows, clamping at ±20; see :mod:`bci.datasets.meg`) is applied to the
training windows in numpy and sits as fixed layers at the front of the exported graph,
so the runtime feeds the network band-passed, decimated windows in tesla and needs to
know nothing about it.

Sizes
-----
:meth:`BrainModuleConfig.published`: Benchetrit et al. (2024), Appendix A / Table S1,
which keeps Défossez et al.'s spatial attention (V = 270 virtual channels, K = 32 so
2048 position features, dropout radius 0.2), subject layer and blocks (H = 320, kernel
3), with 2 residual blocks instead of Défossez's 5, a projection to F' = 2048 and the
temporal aggregation and two MLP heads. The block count and F' are as we read Table S1
(through its public re-implementations); :meth:`BrainModuleConfig.defossez2023` is the
5-block speech model. :meth:`BrainModuleConfig.small` trains on a laptop CPU.
The training defaults (Adam, learning rate 3·10⁻⁴, batch 128, early stopping on a
validation split, λ = 0.75) are the paper's as we recall them, not checked against its
text here; the paper tunes λ.

Sensor kinds are an extension: Défossez et al.'s MEG data sets had one sensor type (CTF
and KIT axial gradiometers), so one query per virtual channel sufficed. On Elekta/MEGIN
systems a magnetometer and two planar gradiometers share each location; with one query
they would get the same weight in every virtual channel. Here each kind has its own
queries (:data:`bci.datasets.meg.KINDS`); with one kind this is exactly the published layer.

Exported graph (:meth:`MEGRetrieval.to_onnx`): one subject's montage, its positions
baked in as the softmax weights they produce, input ``(batch, n_sensors, n_times)`` in
T (T/m for gradiometers), output the CLIP-head embedding ``(batch, F)`` — or, given a
candidate bank, the logits of the candidates ``(batch, n_candidates)`` (temperature ×
cosine), which the runtime turns into a probability per candidate.
"""

from bci.decoders.meg_retrieval.brain import (
    BrainModule,
    DilatedBlock,
    FourierEmbedding,
    Projector,
    SpatialAttention,
)
from bci.decoders.meg_retrieval.config import (
    PARADIGM,
    PREDICT_BATCH,
    BrainModuleConfig,
    tmax_of,
)
from bci.decoders.meg_retrieval.estimator import MEGRetrieval
from bci.decoders.meg_retrieval.losses import clip_loss, retrieval_loss
from bci.decoders.meg_retrieval.ranking import (
    retrieval_curve,
    retrieve,
    top_candidates,
    top_k_accuracy,
)
from bci.decoders.meg_retrieval.ridge import RidgeRetrieval
from bci.decoders.meg_retrieval.training import train_retrieval

from bci.datasets.meg import EPOCH_TMAX

__all__ = [
    "EPOCH_TMAX", "PARADIGM", "PREDICT_BATCH", "BrainModule", "BrainModuleConfig",
    "DilatedBlock", "FourierEmbedding", "MEGRetrieval", "Projector", "RidgeRetrieval",
    "SpatialAttention", "clip_loss", "retrieval_curve", "retrieval_loss", "retrieve",
    "tmax_of", "top_candidates", "top_k_accuracy", "train_retrieval",
]
