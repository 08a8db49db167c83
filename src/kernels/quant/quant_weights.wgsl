// Fake quantization and its scales for one weight matrix (or one HF tensor of a stacked matrix),
// symmetric absmax: w -> clamp(round(w / s), -qmax, qmax) · s, s = absmax / qmax.
// The matrix lives at w[offset .. offset + k·n]: [k, n] (Conv1D, in × out) or, with FLAG_B_T,
// [n, k] (nn.Linear, out × in). Input channels with protect[k] != 0 are neither counted in absmax
// nor changed (LLM.int8()-style mixed precision).
// `absmax_channel`: scales[col] = max |w| of output channel col (one invocation per channel).
// `absmax_tensor`:  scales[0] = max |w| of the whole matrix (one workgroup).
// (wg_max.wgsl is appended.)
// `apply`:          quantize in place with scales[col] (FLAG_PER_CHANNEL) or scales[0].

struct Params {
    k: u32,
    n: u32,
    flags: u32,
    qmax: f32,
    offset: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

const FLAG_B_T: u32 = 1u;
const FLAG_PER_CHANNEL: u32 = 2u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> protect: array<u32>;
@group(0) @binding(3) var<storage, read_write> scales: array<f32>;

fn at(kin: u32, col: u32) -> u32 {
    if ((p.flags & FLAG_B_T) != 0u) {
        return p.offset + col * p.k + kin;
    }
    return p.offset + kin * p.n + col;
}

@compute @workgroup_size(64)
fn absmax_channel(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    if (col >= p.n) {
        return;
    }
    var m = 0.0;
    for (var kin = 0u; kin < p.k; kin = kin + 1u) {
        if (protect[kin] == 0u) {
            m = max(m, abs(w[at(kin, col)]));
        }
    }
    scales[col] = m;
}

@compute @workgroup_size(256)
fn absmax_tensor(@builtin(local_invocation_id) lid: vec3<u32>) {
    var m = 0.0;
    let total = p.k * p.n;
    for (var i = lid.x; i < total; i = i + 256u) {
        // Walk storage order; recover the input channel for the protect mask.
        var kin: u32;
        if ((p.flags & FLAG_B_T) != 0u) {
            kin = i % p.k;
        } else {
            kin = i / p.n;
        }
        if (protect[kin] == 0u) {
            m = max(m, abs(w[p.offset + i]));
        }
    }
    let total_max = wg_max(lid.x, m);
    if (lid.x == 0u) {
        scales[0] = total_max;
    }
}

@compute @workgroup_size(256)
fn apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.k * p.n) {
        return;
    }
    var kin: u32;
    var col: u32;
    if ((p.flags & FLAG_B_T) != 0u) {
        col = i / p.k;
        kin = i % p.k;
    } else {
        kin = i / p.n;
        col = i % p.n;
    }
    if (protect[kin] != 0u) {
        return;
    }
    var amax = scales[0];
    if ((p.flags & FLAG_PER_CHANNEL) != 0u) {
        amax = scales[col];
    }
    let s = amax / p.qmax;
    var q = 0.0;
    if (s > 0.0) {
        q = clamp(round(w[p.offset + i] / s), -p.qmax, p.qmax) * s;
    }
    w[p.offset + i] = q;
}
