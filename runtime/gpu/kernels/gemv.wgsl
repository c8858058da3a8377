// Matrix-vector products for decode: y[m, n] (+)= Σ_k x[m, k] · w[n, k] (+ bias[n]).
// One workgroup of 64 threads computes NC = 4 outputs for a group of up to MAXM = 8 rows (group
// wg.z), so a weight row is read once per 8 rows; the threads stride over K in
// vec4 steps (consecutive threads read consecutive 16-byte pieces of a weight row) and reduce in
// workgroup memory. x: (M, K) f32; w: (N, K) WT (the Hugging Face [out, in] layout); y: (M, N).
// flags: bit 0 adds the product to y (the residual stream), bit 1 adds bias.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  flags: u32,
}

const WG: u32 = 64u;
const NC: u32 = 4u;
const MAXM: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<WT>>;
@group(0) @binding(3) var<storage, read> bias: array<WT>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> red: array<f32, 2048>; // NC · MAXM · WG

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nw: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let n0 = (wg.x + wg.y * nw.x) * NC;
  let m0 = wg.z * MAXM;
  let rows = min(MAXM, p.M - m0);
  let K4 = p.K / 4u;
  var acc: array<f32, 32>; // (MAXM, NC)
  let n1 = min(n0 + 1u, p.N - 1u);
  let n2 = min(n0 + 2u, p.N - 1u);
  let n3 = min(n0 + 3u, p.N - 1u);
  let nn = min(n0, p.N - 1u);
  for (var k = t; k < K4; k += WG) {
    let w0 = vec4<f32>(w[nn * K4 + k]);
    let w1 = vec4<f32>(w[n1 * K4 + k]);
    let w2 = vec4<f32>(w[n2 * K4 + k]);
    let w3 = vec4<f32>(w[n3 * K4 + k]);
    for (var m = 0u; m < rows; m++) {
      let xv = x[(m0 + m) * K4 + k];
      acc[m * NC] += dot(xv, w0);
      acc[m * NC + 1u] += dot(xv, w1);
      acc[m * NC + 2u] += dot(xv, w2);
      acc[m * NC + 3u] += dot(xv, w3);
    }
  }
  let used = rows * NC;
  for (var i = 0u; i < used; i++) {
    red[i * WG + t] = acc[i];
  }
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) {
      for (var i = 0u; i < used; i++) {
        red[i * WG + t] += red[i * WG + t + s];
      }
    }
    workgroupBarrier();
  }
  if (t < used) {
    let m = m0 + t / NC;
    let n = n0 + t % NC;
    if (n < p.N) {
      var v = red[t * WG];
      if ((p.flags & 2u) != 0u) {
        v += f32(bias[n]);
      }
      if ((p.flags & 1u) != 0u) {
        v += y[m * p.N + n];
      }
      y[m * p.N + n] = v;
    }
  }
}
