// The device's arithmetic ceiling for the benchmarks' floors: each invocation runs `iters`
// rounds of 8 independent vec4 fused multiply-adds on registers (no memory traffic), then
// writes one sum so nothing is optimised away. FLOPs = invocations · iters · 8 · 4 · 2.

struct Params {
    iters: u32,
    n: u32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.n) {
        return;
    }
    let s = f32(gid.x % 97u) * 1e-3;
    var r0 = vec4<f32>(s, s + 0.1, s + 0.2, s + 0.3);
    var r1 = r0 + 0.01;
    var r2 = r0 + 0.02;
    var r3 = r0 + 0.03;
    var r4 = r0 + 0.04;
    var r5 = r0 + 0.05;
    var r6 = r0 + 0.06;
    var r7 = r0 + 0.07;
    let m = vec4<f32>(0.999);
    let c = vec4<f32>(0.001);
    for (var i = 0u; i < p.iters; i = i + 1u) {
        r0 = fma(r0, m, c);
        r1 = fma(r1, m, c);
        r2 = fma(r2, m, c);
        r3 = fma(r3, m, c);
        r4 = fma(r4, m, c);
        r5 = fma(r5, m, c);
        r6 = fma(r6, m, c);
        r7 = fma(r7, m, c);
    }
    let t = r0 + r1 + r2 + r3 + r4 + r5 + r6 + r7;
    out[gid.x] = t.x + t.y + t.z + t.w;
}
