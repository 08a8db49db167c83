// matvec.wgsl's reduction with subgroup shuffles (adapters with SUBGROUP and subgroups of 8 to
// 64 lanes, so that an 8-lane group lies inside one subgroup; lanes are assumed numbered in
// local_invocation_index order within a subgroup, as every Vulkan, Metal and D3D12 driver
// does for 1-D workgroups): a butterfly over the group's 8 lanes, no barrier, no shared memory.

fn sum8(v: vec4<f32>) -> vec4<f32> {
    var s = v + subgroupShuffleXor(v, 4u);
    s = s + subgroupShuffleXor(s, 2u);
    return s + subgroupShuffleXor(s, 1u);
}

fn reduce_rows(lid: u32) -> vec4<f32> {
    acc0 = sum8(acc0);
    if (ROWS > 1u) {
        acc1 = sum8(acc1);
        acc2 = sum8(acc2);
        acc3 = sum8(acc3);
    }
    return acc_of(lid & 7u);
}
