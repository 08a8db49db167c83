// Maximum over a workgroup of 256 invocations, one value each (call from uniform control flow).
// Appended at build time to quant_weights.wgsl and quant_acts.wgsl.

var<workgroup> part: array<f32, 256>;

fn wg_max(lid: u32, m: f32) -> f32 {
    part[lid] = m;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            part[lid] = max(part[lid], part[lid + s]);
        }
        workgroupBarrier();
    }
    return part[0];
}
