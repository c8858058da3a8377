// Rotary position embedding, in place, in the Hugging Face "rotate half" layout (element i pairs
// with i + HS/2), on the query and key heads of the fused qkv rows. cos/sin come from a table
// computed on the host in float64: table[(pos · HS/2 + i) · 2] = cos, + 1 = sin.
// qkv: (rows, width) f32 whose first `heads` heads of HS are rotated; pos: (rows) u32.

struct Params {
  rows: u32,
  heads: u32,
  width: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pos: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> qkv: array<f32>;

const HALF: u32 = HS / 2u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let idx = id.x + id.y * nw.x * 64u;
  if (idx >= p.rows * p.heads * HALF) {
    return;
  }
  let i = idx % HALF;
  let h = (idx / HALF) % p.heads;
  let r = idx / (HALF * p.heads);
  let t = (pos[r] * HALF + i) * 2u;
  let c = table[t];
  let s = table[t + 1u];
  let o = r * p.width + h * HS + i;
  let x0 = qkv[o];
  let x1 = qkv[o + HALF];
  qkv[o] = x0 * c - x1 * s;
  qkv[o + HALF] = x1 * c + x0 * s;
}
