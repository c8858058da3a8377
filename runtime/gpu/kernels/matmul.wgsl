// Matrix products for prefill: y[m, n] (+)= Σ_k x[m, k] · w[n, k] (+ bias[n]). Barrier-free: each
// invocation computes a 4 × 4 tile of y from vec4 loads of 4 rows of x and 4 rows of w.
// x: (M, K) f32; w: (N, K) WT; y: (M, N) f32. flags: bit 0 accumulate into y, bit 1 add bias.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  flags: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<WT>>;
@group(0) @binding(3) var<storage, read> bias: array<WT>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3u) {
  let n0 = id.x * 4u;
  let m0 = id.y * 4u;
  if (n0 >= p.N || m0 >= p.M) {
    return;
  }
  let K4 = p.K / 4u;
  var rows: array<u32, 4>;
  var cols: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    rows[i] = min(m0 + i, p.M - 1u) * K4;
    cols[i] = min(n0 + i, p.N - 1u) * K4;
  }
  var acc: array<vec4<f32>, 4>;
  for (var k = 0u; k < K4; k++) {
    let w0 = vec4<f32>(w[cols[0] + k]);
    let w1 = vec4<f32>(w[cols[1] + k]);
    let w2 = vec4<f32>(w[cols[2] + k]);
    let w3 = vec4<f32>(w[cols[3] + k]);
    for (var i = 0u; i < 4u; i++) {
      let xv = x[rows[i] + k];
      acc[i] += vec4<f32>(dot(xv, w0), dot(xv, w1), dot(xv, w2), dot(xv, w3));
    }
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    if (m >= p.M) {
      break;
    }
    for (var c = 0u; c < 4u; c++) {
      let n = n0 + c;
      if (n >= p.N) {
        break;
      }
      var v = acc[i][c];
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
