// Shared by matmul.wgsl and matvec.wgsl (appended to each at build time): how B's weights are
// read (f32, or f16 pairs with the W_F16 override), and what happens to one output value after
// its dot product — bias, then GELU (or ReLU), then a residual add — so that a forward pass that captures
// none of the intermediate hooks skips the separate gelu and add dispatches. Uses the including
// kernel's `p`, `b`, `bias` and `resid`, and gelu_fn.wgsl.

override W_F16: bool = false;

// B's element i: f32 words, or with W_F16 f16 pairs, element 2i in the low half.
fn wload(i: u32) -> f32 {
    if (W_F16) {
        let pair = unpack2x16float(b[i >> 1u]);
        return select(pair.x, pair.y, (i & 1u) == 1u);
    }
    return bitcast<f32>(b[i]);
}

const FLAG_GELU_TANH: u32 = 4u;
const FLAG_GELU_ERF: u32 = 8u;
const FLAG_RESID: u32 = 16u;
const FLAG_RELU: u32 = 32u;

fn epilogue(acc: f32, row: u32, col: u32) -> f32 {
    var o = acc;
    if ((p.flags & FLAG_BIAS) != 0u) {
        o = o + bias[col];
    }
    if ((p.flags & FLAG_GELU_TANH) != 0u) {
        o = gelu(o, 0u);
    } else if ((p.flags & FLAG_GELU_ERF) != 0u) {
        o = gelu(o, 1u);
    } else if ((p.flags & FLAG_RELU) != 0u) {
        o = gelu(o, 2u);
    }
    if ((p.flags & FLAG_RESID) != 0u) {
        o = o + resid[row * p.n + col];
    }
    return o;
}
