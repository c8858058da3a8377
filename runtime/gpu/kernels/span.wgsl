// Shared by the cache and attention kernels: a kv head's segment and its MoA rule.
// heads[layer · NKV + g] = (start, window, α, β): the segment's first slot within a sequence's
// share of the layer buffer, its ring capacity, and the rule's α and β in Q15 fixed point (α as
// i32 bits). The sink is the same for every head.

// First window position the query at `pos` sees: max(sink, n − min(window, ⌈clamp(α + β·n, 0, n)⌉))
// with n = pos + 1, computed exactly in integers.
fn windowStart(hd: vec4<u32>, sink: u32, pos: u32) -> u32 {
  let n = pos + 1u;
  let bn = hd.w * n;
  let a = bitcast<i32>(hd.z);
  let whole = i32(bn >> 15u) + (a >> 15);
  let frac = (bn & 32767u) + u32(a & 32767);
  let span = clamp(whole + i32((frac + 32767u) >> 15u), 0, i32(n));
  return max(sink, n - min(u32(span), hd.y));
}

// Slot of position `pos` within its head's segment (sink slots, then the ring).
fn slotOf(hd: vec4<u32>, sink: u32, pos: u32) -> u32 {
  if (pos < sink) {
    return pos;
  }
  return sink + (pos - sink) % max(hd.y, 1u);
}
