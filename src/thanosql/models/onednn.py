"""open_clip image towers for CPU inference with their linear layers in oneDNN's packed layout.

>>> encode = packed_tower(model.visual, rows=32 * 50)   # None where this torch cannot  # doctest: +SKIP
>>> encode(batch)                                       # as model.visual(batch), within ~3e-6  # doctest: +SKIP

torch runs a float32 ``nn.Linear`` on the CPU through MKL's sgemm, which reads the weight in its
plain layout on every call. oneDNN can reorder a weight once into the blocked layout its AVX-512
kernels read (``torch.ops.mkldnn._reorder_linear_weight``) and then run ``_linear_pointwise`` on
it, with GELU fused in. At ViT-B-32's shapes (1600 x 768 x 3072) that is 210 against 165 GFLOP/s
on this project's two-core machine, and the linear layers are nine tenths of a ViT's time: the
tower goes from 15-17 to 20-22 images/s (bench/convert.py). The arithmetic stays float32 (only the
order of the sums changes), so embeddings match open_clip's eager tower to about 1e-6.

Only open_clip's transformer blocks are rewritten (their MLP and their self-attention, which
becomes the packed projections around ``scaled_dot_product_attention``); everything else in the
tower is shared with the original, whose weights are left as they were (training still uses
them). ``packed_tower`` returns None unless a check on this machine gives the same numbers.
This module imports torch at once: ClipAdapter imports it only when it embeds images on a CPU.
"""

from __future__ import annotations

import copy
import functools

import torch
import torch.nn.functional as F
from torch import nn

# Relative error allowed between a packed and a plain linear layer in the check (float32 sums
# of a few thousand terms in another order differ by ~1e-7 of the result's scale).
CHECK_TOLERANCE = 1e-5


def packed_tower(visual, rows: int):
    """A copy of open_clip's image tower ``visual`` whose transformer blocks run on packed
    weights; ``rows`` (batch size x tokens) hints oneDNN at the shapes to expect. None where
    oneDNN is missing, fails the check, or the tower has no block to rewrite."""
    if not _packing_works():
        return None
    from open_clip.transformer import ResidualAttentionBlock

    # A structural copy that shares every parameter and buffer with the original.
    shared = {id(tensor): tensor for tensor in list(visual.parameters()) + list(visual.buffers())}
    tower = copy.deepcopy(visual, shared)
    rewritten = 0
    with torch.no_grad():
        for block in list(tower.modules()):
            if isinstance(block, ResidualAttentionBlock) and _rewrite_block(block, rows):
                rewritten += 1
    return tower.eval() if rewritten else None


def _rewrite_block(block, rows: int) -> bool:
    mlp, attention = block.mlp, block.attn
    if not (isinstance(mlp.c_fc, nn.Linear) and isinstance(mlp.c_proj, nn.Linear)):
        return False
    gelu = getattr(mlp, "gelu", None)
    fuse_gelu = isinstance(gelu, nn.GELU) and gelu.approximate in ("none", "tanh")
    mlp.c_fc = PackedLinear(mlp.c_fc.weight, mlp.c_fc.bias, rows, gelu.approximate if fuse_gelu else None)
    if fuse_gelu:
        mlp.gelu = nn.Identity()
    mlp.c_proj = PackedLinear(mlp.c_proj.weight, mlp.c_proj.bias, rows)
    if isinstance(attention, nn.MultiheadAttention) and PackedSelfAttention.fits(attention):
        block.attn = PackedSelfAttention(attention, rows)
    return True


class PackedLinear(nn.Module):
    """``x @ weight.T + bias`` (then GELU, with ``gelu`` 'none' or 'tanh') on a weight reordered
    once for oneDNN. ``weight`` keeps the attribute open_clip reads for the tower's dtype."""

    def __init__(self, weight, bias, rows: int, gelu: str | None = None) -> None:
        super().__init__()
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight.detach().float().contiguous(), rows)
        self.bias = bias.detach().float().contiguous() if bias is not None else None
        self.out_features = weight.shape[0]
        self.post_op, self.algorithm = ("gelu", gelu) if gelu else ("none", "")

    def forward(self, x):
        flat = x.reshape(-1, x.shape[-1])
        out = torch.ops.mkldnn._linear_pointwise(flat, self.weight, self.bias, self.post_op, [], self.algorithm)
        return out.reshape(*x.shape[:-1], self.out_features)


class PackedSelfAttention(nn.Module):
    """nn.MultiheadAttention's self-attention (query, key and value the same tensor, no mask, no
    weights returned) on packed projections and ``scaled_dot_product_attention``."""

    @staticmethod
    def fits(attention) -> bool:
        return (
            attention._qkv_same_embed_dim
            and attention.in_proj_weight is not None
            and attention.bias_k is None
            and not attention.add_zero_attn
            and attention.dropout == 0.0
        )

    def __init__(self, attention, rows: int) -> None:
        super().__init__()
        self.original = attention
        self.heads = attention.num_heads
        self.batch_first = attention.batch_first
        self.qkv = PackedLinear(attention.in_proj_weight, attention.in_proj_bias, rows)
        self.out = PackedLinear(attention.out_proj.weight, attention.out_proj.bias, rows)

    def forward(self, query, key, value, need_weights=False, attn_mask=None, **options):
        # Anything but plain self-attention (a mask, whose conventions differ between the two
        # APIs, padding, weights asked for) is left to nn.MultiheadAttention.
        if key is not query or value is not query or need_weights or attn_mask is not None or options:
            return self.original(query, key, value, need_weights=need_weights, attn_mask=attn_mask, **options)
        x = query if self.batch_first else query.transpose(0, 1)
        batch, tokens, width = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        mixed = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        out = self.out(mixed.transpose(1, 2).reshape(batch, tokens, width))
        return (out if self.batch_first else out.transpose(0, 1)), None


@functools.cache
def _packing_works() -> bool:
    """Whether this torch has oneDNN's packed linear and it computes what F.linear does, with and
    without the fused GELU, for a row count other than the one it was packed for."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")):
        return False
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(48, 40, generator=generator)
    bias = torch.randn(48, generator=generator)
    x = torch.randn(2, 7, 40, generator=generator)
    try:
        with torch.inference_mode():
            for gelu in (None, "none", "tanh"):
                expected = F.linear(x, weight, bias)
                if gelu:
                    expected = F.gelu(expected, approximate=gelu)
                got = PackedLinear(weight, bias, rows=32, gelu=gelu)(x)
                if not torch.allclose(got, expected, rtol=CHECK_TOLERANCE, atol=CHECK_TOLERANCE):
                    return False
    except (RuntimeError, NotImplementedError, AttributeError):
        return False
    return True
