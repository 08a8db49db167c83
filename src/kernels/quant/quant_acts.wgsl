// Dynamic per-tensor fake quantization of a linear layer's input x [rows, k], in place:
// one scale per sequence and forward call, s = max |x| over the sequence's valid rows and
// unprotected channels / qmax; x -> clamp(round(x / s), -qmax, qmax) · s. Channels with
// protect[c] != 0 keep their f32 values (LLM.int8()-style); padding rows are left alone.
// `absmax`: one workgroup per sequence b (rows b·tmax .. b·tmax + tmax) -> scales[b].
// (wg_max.wgsl is appended.)
// `apply`:  one invocation per element.

struct Params {
    rows: u32,
    k: u32,
    tmax: u32,
    qmax: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> protect: array<u32>;
// Per row: sequence, position, valid, sequence length (as the forward pass writes it).
@group(0) @binding(3) var<storage, read> rowinfo: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> scales: array<f32>;

@compute @workgroup_size(256)
fn absmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wg.x;
    let n = p.tmax * p.k;
    var m = 0.0;
    for (var i = lid.x; i < n; i = i + 256u) {
        let row = b * p.tmax + i / p.k;
        let c = i % p.k;
        if (row < p.rows && rowinfo[row].z != 0u && protect[c] == 0u) {
            m = max(m, abs(x[row * p.k + c]));
        }
    }
    let total_max = wg_max(lid.x, m);
    if (lid.x == 0u) {
        scales[b] = total_max;
    }
}

@compute @workgroup_size(256)
fn apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.k) {
        return;
    }
    let row = i / p.k;
    let c = i % p.k;
    let info = rowinfo[row];
    if (info.z == 0u || protect[c] != 0u) {
        return;
    }
    let s = scales[info.x] / p.qmax;
    var q = 0.0;
    if (s > 0.0) {
        q = clamp(round(x[i] / s), -p.qmax, p.qmax) * s;
    }
    x[i] = q;
}
