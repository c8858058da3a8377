// Greedy sampling on the GPU: the argmax of each logits row (first index on ties, as the CPU's
// argmax) becomes the next input token, so decoding needs no host round trip per token.
// decode = 1: row r is sequence r; the token is recorded at out[r · cap + pos[r] − base[r]], then
// pos[r] advances by one. decode = 0 (end of a prefill): the single row belongs to sequence `seq`
// and is recorded at out[seq · cap]. logits: (rows, V) f32; tokens, pos, base: (B) u32;
// out: (B, cap) u32.

struct Params {
  rows: u32,
  V: u32,
  cap: u32,
  decode: u32,
  seq: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> tokens: array<u32>;
@group(0) @binding(3) var<storage, read_write> pos: array<u32>;
@group(0) @binding(4) var<storage, read> base: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<u32>;

var<workgroup> bestV: array<f32, 64>;
var<workgroup> bestI: array<u32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let r = wg.x;
  var bv = -3.4e38;
  var bi = 0xffffffffu;
  for (var v = t; v < p.V; v += 64u) {
    let x = logits[r * p.V + v];
    if (x > bv) {
      bv = x;
      bi = v;
    }
  }
  bestV[t] = bv;
  bestI[t] = bi;
  workgroupBarrier();
  for (var k = 32u; k > 0u; k >>= 1u) {
    if (t < k) {
      let ov = bestV[t + k];
      let oi = bestI[t + k];
      if (ov > bestV[t] || (ov == bestV[t] && oi < bestI[t])) {
        bestV[t] = ov;
        bestI[t] = oi;
      }
    }
    workgroupBarrier();
  }
  if (t != 0u) {
    return;
  }
  let tok = min(bestI[0], p.V - 1u);
  if (p.decode == 1u) {
    tokens[r] = tok;
    out[r * p.cap + pos[r] - base[r]] = tok;
    pos[r] = pos[r] + 1u;
  } else {
    tokens[p.seq] = tok;
    out[p.seq * p.cap] = tok;
  }
}
