// Merges the split-K partials of attn_decode.wgsl: out[b, h, d] = Σ_s e^(m_s − M) acc_s[d] /
// Σ_s e^(m_s − M) l_s with M = max_s m_s; a head that saw no key gets zeros.
// pm, pl: (B, NH, splits); pacc: (B, NH, splits, HS); out: (B, NH · HS) f32.

struct Params {
  rows: u32,
  splits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pm: array<f32>;
@group(0) @binding(2) var<storage, read> pl: array<f32>;
@group(0) @binding(3) var<storage, read> pacc: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let idx = id.x + id.y * nw.x * 64u;
  if (idx >= p.rows * NH * HS) {
    return;
  }
  let d = idx % HS;
  let bh = idx / HS;
  var mx = -3.0e38;
  for (var s = 0u; s < p.splits; s++) {
    mx = max(mx, pm[bh * p.splits + s]);
  }
  var l = 0.0;
  var o = 0.0;
  for (var s = 0u; s < p.splits; s++) {
    let e = exp(pm[bh * p.splits + s] - mx);
    l += e * pl[bh * p.splits + s];
    o += e * pacc[(bh * p.splits + s) * HS + d];
  }
  out[idx] = select(0.0, o / l, l > 0.0);
}
