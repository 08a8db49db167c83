// C[M, N] = A[M, K] · B (+ bias[N]), prefill tiles with more register blocking than
// matmul.wgsl: 64×64 outputs per workgroup of 8×8 invocations, each holding an 8×8 block in
// sixteen named vec4 accumulators, so every k step reads 4 vec4s of the tiles for 64 FMAs
// (matmul.wgsl: 2 for 16). B is [K, N] or, with FLAG_B_T, [N, K]. K is walked 16 at a time
// through workgroup memory; edges are guarded. Outputs go through epilogue.wgsl.

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

var<workgroup> As: array<vec4<f32>, 256>; // [BK][BM / 4]
var<workgroup> Bs: array<vec4<f32>, 256>; // [BK][BN / 4]

fn store4(row: u32, col0: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        let col = col0 + j;
        if (col < p.n) {
            c[row * p.n + col] = epilogue(v[j], row, col);
        }
    }
}

@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile_r = wg.y * BM;
    let tile_c = wg.x * BN;
    let tid = lid.y * 8u + lid.x;
    let bt = (p.flags & FLAG_B_T) != 0u;
    var c00 = vec4<f32>(0.0);
    var c01 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0);
    var c11 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0);
    var c21 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0);
    var c31 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0);
    var c41 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0);
    var c51 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0);
    var c61 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0);
    var c71 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 = k0 + BK) {
        // 64 × 16 values of each tile, 16 per invocation.
        for (var i = 0u; i < 16u; i = i + 1u) {
            load_tile_element(tid + i * 64u, tile_r, tile_c, k0, bt);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
            let a0 = As[kk * 16u + lid.y * 2u];
            let a1 = As[kk * 16u + lid.y * 2u + 1u];
            let b0 = Bs[kk * 16u + lid.x * 2u];
            let b1 = Bs[kk * 16u + lid.x * 2u + 1u];
            c00 = c00 + a0.x * b0;
            c01 = c01 + a0.x * b1;
            c10 = c10 + a0.y * b0;
            c11 = c11 + a0.y * b1;
            c20 = c20 + a0.z * b0;
            c21 = c21 + a0.z * b1;
            c30 = c30 + a0.w * b0;
            c31 = c31 + a0.w * b1;
            c40 = c40 + a1.x * b0;
            c41 = c41 + a1.x * b1;
            c50 = c50 + a1.y * b0;
            c51 = c51 + a1.y * b1;
            c60 = c60 + a1.z * b0;
            c61 = c61 + a1.z * b1;
            c70 = c70 + a1.w * b0;
            c71 = c71 + a1.w * b1;
        }
        workgroupBarrier();
    }
    let row0 = tile_r + lid.y * 8u;
    let col0 = tile_c + lid.x * 8u;
    store4(row0 + 0u, col0, c00);
    store4(row0 + 0u, col0 + 4u, c01);
    store4(row0 + 1u, col0, c10);
    store4(row0 + 1u, col0 + 4u, c11);
    store4(row0 + 2u, col0, c20);
    store4(row0 + 2u, col0 + 4u, c21);
    store4(row0 + 3u, col0, c30);
    store4(row0 + 3u, col0 + 4u, c31);
    store4(row0 + 4u, col0, c40);
    store4(row0 + 4u, col0 + 4u, c41);
    store4(row0 + 5u, col0, c50);
    store4(row0 + 5u, col0 + 4u, c51);
    store4(row0 + 6u, col0, c60);
    store4(row0 + 6u, col0 + 4u, c61);
    store4(row0 + 7u, col0, c70);
    store4(row0 + 7u, col0 + 4u, c71);
}
