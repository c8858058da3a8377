// Prefill attention for one chunk of one sequence, block-sparse by construction: the query at
// position P0 + t of query head h loops over its sink keys and its window only (online softmax,
// no masked key is read). Keys at positions ≥ P0 come from this chunk's qkv rows, earlier ones
// from the sequence's cache segment, so a prefill can continue an existing cache. Barrier-free:
// one invocation per (row, query head). With `band` > 0 (the reference span semantics) the window
// is also cut to whole key blocks: the query block ⌊pos/band⌋ sees the key blocks from
// ⌊pos/band⌋ − ⌈window/band⌉ + 1 on (runtime/spans.ts).
// qkv: (T, width) f32 (RoPE applied); K, V: (B, slotsPerSeq, HS) KT; out: (T, NH · HS) f32.

struct Params {
  T: u32,
  P0: u32,
  layer: u32,
  sink: u32,
  slotsPerSeq: u32,
  width: u32,
  seq: u32,
  scale: f32,
  band: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> heads: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> K: array<KT>;
@group(0) @binding(4) var<storage, read> V: array<KT>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let idx = id.x + id.y * nw.x * 64u;
  if (idx >= p.T * NH) {
    return;
  }
  let h = idx % NH;
  let t = idx / NH;
  let g = h / G;
  let hd = heads[p.layer * NKV + g];
  let ps = p.P0 + t;
  let n = ps + 1u;
  let nSink = min(p.sink, n);
  var ws = windowStart(hd, p.sink, ps);
  if (p.band > 0u) {
    let w = (hd.y + p.band - 1u) / p.band;
    let qb1 = ps / p.band + 1u;
    if (qb1 > w) {
      ws = max(ws, (qb1 - w) * p.band);
    }
  }
  var q: array<f32, HS>;
  for (var d = 0u; d < HS; d++) {
    q[d] = qkv[t * p.width + h * HS + d];
  }
  var acc: array<f32, HS>;
  var m = -3.0e38;
  var l = 0.0;
  let cnt = nSink + (n - min(ws, n));
  let base = p.seq * p.slotsPerSeq + hd.x;
  let kOff = (NH + g) * HS;
  let vOff = (NH + NKV + g) * HS;
  for (var j = 0u; j < cnt; j++) {
    var kp = j;
    if (j >= nSink) {
      kp = ws + (j - nSink);
    }
    var s = 0.0;
    let fromChunk = kp >= p.P0;
    let cRow = (kp - select(0u, p.P0, fromChunk)) * p.width;
    let kRow = (base + slotOf(hd, p.sink, kp)) * HS;
    if (fromChunk) {
      for (var d = 0u; d < HS; d++) {
        s += q[d] * qkv[cRow + kOff + d];
      }
    } else {
      for (var d = 0u; d < HS; d++) {
        s += q[d] * f32(K[kRow + d]);
      }
    }
    s *= p.scale;
    let mNew = max(m, s);
    let corr = exp(m - mNew);
    let e = exp(s - mNew);
    l = l * corr + e;
    m = mNew;
    if (fromChunk) {
      for (var d = 0u; d < HS; d++) {
        acc[d] = acc[d] * corr + e * qkv[cRow + vOff + d];
      }
    } else {
      for (var d = 0u; d < HS; d++) {
        acc[d] = acc[d] * corr + e * f32(V[kRow + d]);
      }
    }
  }
  let inv = select(0.0, 1.0 / l, l > 0.0);
  for (var d = 0u; d < HS; d++) {
    out[t * NH * HS + h * HS + d] = acc[d] * inv;
  }
}
