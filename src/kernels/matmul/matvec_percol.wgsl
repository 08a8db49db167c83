// C[M, N] = A[M, K] · B (+ bias[N]) for few rows (decode, short prompts): no tile is wasted.
// Each invocation computes one output column for up to 8 rows of A (the row block wg.y),
// walking K once and reading each weight once per block. B is [K, N] (Conv1D) or, with
// FLAG_B_T, [N, K] (nn.Linear, the LM head).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
}

const FLAG_BIAS: u32 = 1u;
const FLAG_B_T: u32 = 2u;
const RB: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
// B as raw words: f32 values, or f16 pairs (see wload in epilogue.wgsl).
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
// Added to the output with FLAG_RESID (see epilogue.wgsl).
@group(0) @binding(5) var<storage, read> resid: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let col = gid.x;
    let row0 = wg.y * RB;
    if (col >= p.n) {
        return;
    }
    let rows = min(RB, p.m - row0);
    let bt = (p.flags & FLAG_B_T) != 0u;
    var acc = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    var k0 = 0u;
    // Four k at a time, as dot products: a's four values are contiguous, and so are the
    // weights in nn.Linear layout (one stream per invocation instead of a strided gather);
    // in Conv1D layout they are four rows of the same column. A quarter of the loop overhead
    // and of the accumulator traffic.
    let k4 = p.k & ~3u;
    for (; k0 < k4; k0 = k0 + 4u) {
        var w: vec4<f32>;
        if (bt) {
            let base = col * p.k + k0;
            w = vec4<f32>(wload(base), wload(base + 1u), wload(base + 2u), wload(base + 3u));
        } else {
            let base = k0 * p.n + col;
            w = vec4<f32>(wload(base), wload(base + p.n), wload(base + 2u * p.n), wload(base + 3u * p.n));
        }
        for (var r = 0u; r < rows; r = r + 1u) {
            let ab = (row0 + r) * p.k + k0;
            acc[r] = acc[r] + dot(vec4<f32>(a[ab], a[ab + 1u], a[ab + 2u], a[ab + 3u]), w);
        }
    }
    for (var k = k0; k < p.k; k = k + 1u) {
        var w: f32;
        if (bt) {
            w = wload(col * p.k + k);
        } else {
            w = wload(k * p.n + col);
        }
        for (var r = 0u; r < rows; r = r + 1u) {
            acc[r] = acc[r] + a[(row0 + r) * p.k + k] * w;
        }
    }
    for (var r = 0u; r < rows; r = r + 1u) {
        c[(row0 + r) * p.n + col] = epilogue(acc[r], row0 + r, col);
    }
}
