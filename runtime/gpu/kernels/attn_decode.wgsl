// Decode attention, split-K: one workgroup per (key split, kv head g, sequence b) handles the G
// query heads that share kv head g, so each key and value is read once for all of them. The keys
// a head sees are its sink (positions < min(sink, n)) and its window [windowStart, pos], read from
// the head's cache segment. Each workgroup writes a partial softmax (max m, sum l, weighted values
// acc) per query head; attn_combine.wgsl merges the splits.
// qkv: (B, width) f32; K, V: (B, slotsPerSeq, HS) KT; pos: (B) u32;
// pm, pl: (B, NH, splits) f32; pacc: (B, NH, splits, HS) f32.

struct Params {
  layer: u32,
  sink: u32,
  slotsPerSeq: u32,
  width: u32,
  keysPerSplit: u32,
  splits: u32,
  scale: f32,
}

const WG: u32 = 64u;
const DPT: u32 = (HS + WG - 1u) / WG; // value dimensions per thread
const NEG: f32 = -3.0e38;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pos: array<u32>;
@group(0) @binding(2) var<storage, read> heads: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> qkv: array<f32>;
@group(0) @binding(4) var<storage, read> K: array<vec4<KT>>;
@group(0) @binding(5) var<storage, read> V: array<KT>;
@group(0) @binding(6) var<storage, read_write> pm: array<f32>;
@group(0) @binding(7) var<storage, read_write> pl: array<f32>;
@group(0) @binding(8) var<storage, read_write> pacc: array<f32>;

var<workgroup> qs: array<f32, G * HS>;
var<workgroup> sc: array<f32, G * WG>;
var<workgroup> rowOf: array<u32, WG>;
var<workgroup> count: u32;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let split = wg.x;
  let g = wg.y;
  let b = wg.z;
  let hd = heads[p.layer * NKV + g];
  let ps = pos[b];
  let n = ps + 1u;
  let nSink = min(p.sink, n);
  let ws = windowStart(hd, p.sink, ps);
  if (t == 0u) {
    count = nSink + (n - min(ws, n));
  }
  for (var i = t; i < G * HS; i += WG) {
    qs[i] = qkv[b * p.width + g * G * HS + i];
  }
  let cnt = workgroupUniformLoad(&count);
  let j0 = min(split * p.keysPerSplit, cnt);
  let j1 = min(cnt, j0 + p.keysPerSplit);
  let base = b * p.slotsPerSeq + hd.x;
  var m: array<f32, G>;
  var l: array<f32, G>;
  var acc: array<f32, G * DPT>;
  for (var h = 0u; h < G; h++) {
    m[h] = NEG;
  }
  for (var tile = j0; tile < j1; tile += WG) {
    let j = tile + t;
    if (j < j1) {
      var kp = j;
      if (j >= nSink) {
        kp = ws + (j - nSink);
      }
      let row = base + slotOf(hd, p.sink, kp);
      rowOf[t] = row * HS;
      for (var h = 0u; h < G; h++) {
        var s = 0.0;
        for (var d4 = 0u; d4 < HS / 4u; d4++) {
          let q = vec4<f32>(qs[h * HS + d4 * 4u], qs[h * HS + d4 * 4u + 1u],
                            qs[h * HS + d4 * 4u + 2u], qs[h * HS + d4 * 4u + 3u]);
          s += dot(q, vec4<f32>(K[row * (HS / 4u) + d4]));
        }
        sc[h * WG + t] = s * p.scale;
      }
    }
    workgroupBarrier();
    let nk = min(WG, j1 - tile);
    for (var h = 0u; h < G; h++) {
      var tm = NEG;
      for (var jj = 0u; jj < nk; jj++) {
        tm = max(tm, sc[h * WG + jj]);
      }
      let mNew = max(m[h], tm);
      let corr = exp(m[h] - mNew);
      var ls = 0.0;
      for (var dd = 0u; dd < DPT; dd++) {
        acc[h * DPT + dd] *= corr;
      }
      for (var jj = 0u; jj < nk; jj++) {
        let e = exp(sc[h * WG + jj] - mNew);
        ls += e;
        for (var dd = 0u; dd < DPT; dd++) {
          let d = t + dd * WG;
          if (d < HS) {
            acc[h * DPT + dd] += e * f32(V[rowOf[jj] + d]);
          }
        }
      }
      l[h] = l[h] * corr + ls;
      m[h] = mNew;
    }
    workgroupBarrier();
  }
  for (var h = 0u; h < G; h++) {
    let o = (b * NH + g * G + h) * p.splits + split;
    if (t == 0u) {
      pm[o] = m[h];
      pl[o] = l[h];
    }
    for (var dd = 0u; dd < DPT; dd++) {
      let d = t + dd * WG;
      if (d < HS) {
        pacc[o * HS + d] = acc[h * DPT + dd];
      }
    }
  }
}
