"""deploy/export.py with the graph as it was before 375093c (chunk/neg rotate-half, one 5-d q/k/v permute, SDPA)."""
import sys

import torch

import small_encoders.deploy.export as export
import small_encoders.modeling.modeling_small_encoder as mse


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)

def forward(self, hidden, masks, rotary, output_attentions=False):
    batch, length, _ = hidden.shape
    qkv = self.qkv(hidden).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
    query, key, value = qkv.unbind(0)
    if rotary is not None:
        cos, sin = rotary
        query = query * cos + rotate_half(query) * sin
        key = key * cos + rotate_half(key) * sin
    impl = self.config._attn_implementation or "sdpa"
    attention = mse.ALL_ATTENTION_FUNCTIONS.get_interface(impl, mse.eager_attention_forward)
    context, _ = attention(self, query, key, value, masks[impl], scaling=self.head_dim**-0.5, dropout=0.0, is_causal=False)
    return self.out(context.reshape(batch, length, -1)), None

mse.rotate_half = rotate_half
mse.SmallEncoderAttention.forward = forward
export.eager_attention = lambda model: model
sys.exit(export.main(sys.argv[1:]))
