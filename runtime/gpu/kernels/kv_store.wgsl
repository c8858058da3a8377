// Writes the keys and values of new tokens (RoPE already applied) into the per-head cache
// segments: sink slots first, then a ring of `window` slots. A position that a later token of
// the same chunk overwrites is skipped, so no two invocations write one slot.
// qkv: (rows, width) f32 with q heads, then NKV key heads, then NKV value heads, each HS wide.
// K, V: (batch, slotsPerSeq, HS) KT. decode = 1: row r is sequence r and its position is pos[r];
// decode = 0: every row belongs to sequence `seq`, row r at position pos[r], chunk ending at `end`.

struct Params {
  rows: u32,
  layer: u32,
  sink: u32,
  slotsPerSeq: u32,
  width: u32,
  decode: u32,
  seq: u32,
  end: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pos: array<u32>;
@group(0) @binding(2) var<storage, read> heads: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> qkv: array<f32>;
@group(0) @binding(4) var<storage, read_write> K: array<KT>;
@group(0) @binding(5) var<storage, read_write> V: array<KT>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let idx = id.x + id.y * nw.x * 64u;
  if (idx >= p.rows * NKV * HS) {
    return;
  }
  let d = idx % HS;
  let g = (idx / HS) % NKV;
  let r = idx / (HS * NKV);
  let ps = pos[r];
  var s = p.seq;
  var end = p.end;
  if (p.decode == 1u) {
    s = r;
    end = ps + 1u;
  }
  let hd = heads[p.layer * NKV + g];
  if (ps >= p.sink && (hd.y == 0u || ps + hd.y < end)) {
    return;
  }
  let dst = (s * p.slotsPerSeq + hd.x + slotOf(hd, p.sink, ps)) * HS + d;
  let src = r * p.width + (NH + g) * HS + d;
  K[dst] = KT(qkv[src]);
  V[dst] = KT(qkv[src + NKV * HS]);
}
