// C[M, N] = A[M, K] · B (+ bias[N]).
// B is [K, N] row-major (Hugging Face Conv1D layout) or, with FLAG_B_T, [N, K] (the tied LM head: wte).
// Tiles of 64×64 outputs per workgroup of 16×16 invocations, 4×4 outputs each in four vec4 registers;
// K is walked 16 at a time through workgroup memory. Edges (M, N, K not multiples of the tile) are guarded.
// Outputs go through epilogue.wgsl (bias, optional GELU, optional residual add).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
}

const FLAG_BIAS: u32 = 1u;
const FLAG_B_T: u32 = 2u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
// B as raw words: f32 values, or f16 pairs (see wload in epilogue.wgsl).
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
// Added to the output with FLAG_RESID (see epilogue.wgsl).
@group(0) @binding(5) var<storage, read> resid: array<f32>;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

// Tiles as vec4 so the inner loop reads each operand with one vector load.
var<workgroup> As: array<vec4<f32>, 256>; // [BK][BM / 4]
var<workgroup> Bs: array<vec4<f32>, 256>; // [BK][BN / 4]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    let tx = lid.x;
    let ty = lid.y;
    let tid = ty * 16u + tx;
    let bt = (p.flags & FLAG_B_T) != 0u;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var k0 = 0u; k0 < p.k; k0 = k0 + BK) {
        for (var i = 0u; i < 4u; i = i + 1u) {
            load_tile_element(tid + i * 256u, row0, col0, k0, bt);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
            let av = As[kk * 16u + ty];
            let bv = Bs[kk * 16u + tx];
            acc0 = acc0 + av.x * bv;
            acc1 = acc1 + av.y * bv;
            acc2 = acc2 + av.z * bv;
            acc3 = acc3 + av.w * bv;
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = row0 + ty * 4u + i;
        if (row >= p.m) {
            break;
        }
        var v: vec4<f32>;
        switch i {
            case 0u: { v = acc0; }
            case 1u: { v = acc1; }
            case 2u: { v = acc2; }
            default: { v = acc3; }
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = col0 + tx * 4u + j;
            if (col < p.n) {
                c[row * p.n + col] = epilogue(v[j], row, col);
            }
        }
    }
}
