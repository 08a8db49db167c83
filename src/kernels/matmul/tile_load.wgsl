// One element of the 64×16 A tile and of the 16×64 B tile into workgroup memory (As, Bs,
// stored [BK][64 / 4] as vec4s), shared by matmul.wgsl and matmul_r8.wgsl: element `e` of
// 1024, tile origin (row0, col0) and k offset k0. Out-of-range entries are 0. With `bt`
// (nn.Linear B [N, K]) consecutive e walk k of one output column, for coalesced reads.
fn load_tile_element(e: u32, row0: u32, col0: u32, k0: u32, bt: bool) {
    let ar = e / BK;
    let ak = e % BK;
    let gr = row0 + ar;
    let gk = k0 + ak;
    var av = 0.0;
    if (gr < p.m && gk < p.k) {
        av = a[gr * p.k + gk];
    }
    As[ak * 16u + (ar >> 2u)][ar & 3u] = av;
    var bk: u32;
    var bc: u32;
    if (bt) {
        bc = e / BK;
        bk = e % BK;
    } else {
        bk = e / BN;
        bc = e % BN;
    }
    let gc = col0 + bc;
    let gk2 = k0 + bk;
    var bv = 0.0;
    if (gc < p.n && gk2 < p.k) {
        if (bt) {
            bv = wload(gc * p.k + gk2);
        } else {
            bv = wload(gk2 * p.n + gc);
        }
    }
    Bs[bk * 16u + (bc >> 2u)][bc & 3u] = bv;
}
