// matvec.wgsl's reduction through workgroup memory (every adapter): each lane stores its ROWS
// partial vec4s, then lane j < ROWS of each 8-lane group sums row j over the group's 8 lanes.

var<workgroup> part: array<vec4<f32>, 256>; // [ROWS ≤ 4][64 lanes]

fn reduce_rows(lid: u32) -> vec4<f32> {
    part[lid] = acc0;
    if (ROWS > 1u) {
        part[64u + lid] = acc1;
        part[128u + lid] = acc2;
        part[192u + lid] = acc3;
    }
    workgroupBarrier();
    let j = lid & 7u;
    var s = vec4<f32>(0.0);
    if (j < ROWS) {
        let base = j * 64u + (lid & ~7u);
        s = ((part[base] + part[base + 1u]) + (part[base + 2u] + part[base + 3u]))
            + ((part[base + 4u] + part[base + 5u]) + (part[base + 6u] + part[base + 7u]));
    }
    return s;
}
