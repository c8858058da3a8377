import assert from "node:assert/strict";
import { InputError } from "./errors.ts";
import { Rng } from "./rng.ts";
import {
  encodeSafetensors,
  f32BitsToBf16Bits,
  f32BitsToF16Bits,
  layoutSafetensors,
  parseSafetensors,
  parseSafetensorsWithMetadata,
  SafetensorsFile,
  type TensorView,
  toFloat32,
} from "./safetensors.ts";

const FILE = "w.safetensors";

/** Builds a file by hand: u64 header length, the header text as given, then `data`. */
function handMade(header: string, data: Uint8Array, declared?: bigint): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, declared ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

/** Little-endian bytes of 16-bit patterns. */
function u16Bytes(bits: number[]): Uint8Array {
  const out = new Uint8Array(2 * bits.length);
  const dv = new DataView(out.buffer);
  bits.forEach((b, i) => dv.setUint16(2 * i, b, true));
  return out;
}

/** The 16-bit patterns of an encoded tensor, read back with a DataView. */
function u16Of(view: TensorView): number[] {
  const dv = new DataView(view.data.buffer, view.data.byteOffset, view.data.byteLength);
  return Array.from({ length: view.data.length / 2 }, (_, i) => dv.getUint16(2 * i, true));
}

function f32Bits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0]!;
}

/** Reference binary16 codec: the engine's own Float16Array. */
function refF16Bits(x: number): number {
  return new Uint16Array(new Float16Array([x]).buffer)[0]!;
}
function refF16Value(bits: number): number {
  return new Float16Array(new Uint16Array([bits]).buffer)[0]!;
}

/** Reference bfloat16 rounding: pick the nearer of the two truncations, ties to the even one. */
function refBf16Bits(x: number): number {
  const b = f32Bits(x);
  const lo = b >>> 16;
  const value = (h: number) => new Float32Array(new Uint32Array([h << 16]).buffer)[0]!;
  const hi = lo + 1; // next value away from zero (same sign)
  const dLo = Math.abs(x - value(lo));
  const dHi = Math.abs(x - value(hi));
  if (dLo < dHi) return lo;
  if (dHi < dLo) return hi;
  return (lo & 1) === 0 ? lo : hi;
}

function throwsInput(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${e}`);
    assert.ok(e.message.startsWith(FILE + ":"), `message should start with the file: ${e.message}`);
    for (const p of parts) {
      assert.ok(e.message.includes(p), `message ${JSON.stringify(e.message)} lacks ${p}`);
    }
    return true;
  });
}

Deno.test("parseSafetensors() reads a hand-made file", async (t) => {
  await t.step("returns dtype, shape and a no-copy view of each tensor", () => {
    const data = new Uint8Array(16 + 4);
    const dv = new DataView(data.buffer);
    [1.5, -2, 0.25, 1e-3].forEach((x, i) => dv.setFloat32(4 * i, x, true));
    dv.setUint16(16, 0x3c00, true); // F16 1
    dv.setUint16(18, 0xc000, true); // F16 -2
    const header = JSON.stringify({
      a: { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] },
      b: { dtype: "F16", shape: [2], data_offsets: [16, 20] },
      __metadata__: { format: "pt" },
    });
    const bytes = handMade(header, data);
    const { tensors, metadata } = parseSafetensorsWithMetadata(bytes, FILE);
    assert.deepEqual(metadata, { format: "pt" });
    assert.deepEqual([...tensors.keys()].sort(), ["a", "b"]);
    const a = tensors.get("a")!;
    assert.equal(a.dtype, "F32");
    assert.deepEqual(a.shape, [2, 2]);
    assert.equal(a.data.buffer, bytes.buffer);
    assert.equal(a.data.byteOffset, 8 + header.length);
    assert.deepEqual(Array.from(toFloat32(a, FILE, "a")), [1.5, -2, 0.25, Math.fround(1e-3)]);
    assert.deepEqual(Array.from(toFloat32(tensors.get("b")!, FILE, "b")), [1, -2]);
  });

  await t.step("reads F32 data at an offset that is not a multiple of 4", () => {
    const data = new Uint8Array(8);
    new DataView(data.buffer).setFloat32(0, 3.25, true);
    new DataView(data.buffer).setFloat32(4, -7, true);
    const header = JSON.stringify({ x: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }) +
      "   ";
    assert.notEqual((8 + header.length) % 4, 0);
    const x = parseSafetensors(handMade(header, data), FILE).get("x")!;
    assert.deepEqual(Array.from(toFloat32(x, FILE, "x")), [3.25, -7]);
  });

  await t.step("reads F16 and BF16 data at an odd offset", () => {
    let header = JSON.stringify({
      h: { dtype: "F16", shape: [1], data_offsets: [0, 2] },
      b: { dtype: "BF16", shape: [1], data_offsets: [2, 4] },
    });
    if ((8 + header.length) % 2 === 0) header += " ";
    const odd = handMade(header, u16Bytes([0x3c00, 0x4049]));
    const m = parseSafetensors(odd, FILE);
    assert.equal(m.get("h")!.data.byteOffset % 2, 1);
    assert.deepEqual(Array.from(toFloat32(m.get("h")!, FILE, "h")), [1]);
    assert.deepEqual(Array.from(toFloat32(m.get("b")!, FILE, "b")), [3.140625]);
  });

  await t.step("accepts an empty tensor and an empty header", () => {
    const m = parseSafetensors(
      handMade(
        JSON.stringify({ e: { dtype: "F32", shape: [0, 3], data_offsets: [0, 0] } }),
        new Uint8Array(),
      ),
      FILE,
    );
    assert.equal(toFloat32(m.get("e")!, FILE, "e").length, 0);
    assert.equal(parseSafetensors(handMade("{}", new Uint8Array()), FILE).size, 0);
  });
});

Deno.test("parseSafetensors() rejects malformed files", async (t) => {
  const good = encodeSafetensors([
    { name: "a", dtype: "F32", shape: [2, 3], data: new Float32Array(6) },
    { name: "b", dtype: "BF16", shape: [4], data: new Float32Array(4) },
  ]);

  await t.step("a file shorter than 8 bytes", () => {
    throwsInput(() => parseSafetensors(new Uint8Array(5), FILE), "file is 5 bytes", "8-byte");
  });

  await t.step("a header length beyond the end of the file", () => {
    const bytes = handMade("{}", new Uint8Array(), 1000n);
    throwsInput(
      () => parseSafetensors(bytes, FILE),
      "header declares 1000 bytes but the file has only 2",
    );
  });

  await t.step("a header length too large for any file", () => {
    const bytes = handMade("{}", new Uint8Array(), 0xffffffffffffffffn);
    throwsInput(() => parseSafetensors(bytes, FILE), "header declares 18446744073709551615 bytes");
  });

  await t.step("a file truncated inside the header", () => {
    throwsInput(
      () => parseSafetensors(good.subarray(0, 20), FILE),
      "header declares",
      "has only 12",
    );
  });

  await t.step("a file truncated inside the data", () => {
    const dataLen = 6 * 4 + 4 * 2;
    const cut = good.subarray(0, good.length - 3);
    throwsInput(
      () => parseSafetensors(cut, FILE),
      `tensor "b" ends at byte ${dataLen} but data area has ${dataLen - 3} bytes`,
    );
  });

  await t.step("invalid JSON in the header", () => {
    throwsInput(
      () => parseSafetensors(handMade('{"a": ', new Uint8Array()), FILE),
      "invalid JSON header",
    );
  });

  await t.step("invalid UTF-8 in the header", () => {
    const bytes = handMade("{}  ", new Uint8Array());
    bytes[9] = 0xff;
    throwsInput(() => parseSafetensors(bytes, FILE), "invalid JSON header");
  });

  await t.step("a header that is not an object", () => {
    throwsInput(
      () => parseSafetensors(handMade("[1,2]", new Uint8Array()), FILE),
      "header: expected a JSON object",
    );
  });

  await t.step("an unknown dtype", () => {
    const h = JSON.stringify({ a: { dtype: "F12", shape: [1], data_offsets: [0, 2] } });
    throwsInput(
      () => parseSafetensors(handMade(h, new Uint8Array(2)), FILE),
      'tensor "a": dtype',
      '"F12"',
    );
  });

  await t.step("a bad shape", () => {
    const h = JSON.stringify({ a: { dtype: "F32", shape: [2, -1], data_offsets: [0, 8] } });
    throwsInput(
      () => parseSafetensors(handMade(h, new Uint8Array(8)), FILE),
      'tensor "a": shape',
      "[2,-1]",
    );
  });

  await t.step("bad data_offsets", () => {
    const h = JSON.stringify({ a: { dtype: "F32", shape: [1], data_offsets: [4, 0] } });
    throwsInput(
      () => parseSafetensors(handMade(h, new Uint8Array(8)), FILE),
      'tensor "a": data_offsets',
      "[4,0]",
    );
  });

  await t.step("data_offsets outside the data area", () => {
    const h = JSON.stringify({ a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } });
    throwsInput(
      () => parseSafetensors(handMade(h, new Uint8Array(12)), FILE),
      'tensor "a" ends at byte 16 but data area has 12 bytes',
    );
  });

  await t.step("a byte length that disagrees with shape and dtype", () => {
    const h = JSON.stringify({ a: { dtype: "F16", shape: [2, 3], data_offsets: [0, 8] } });
    throwsInput(
      () => parseSafetensors(handMade(h, new Uint8Array(8)), FILE),
      "span 8 bytes but shape [2,3] of F16 needs 12",
    );
  });

  await t.step("overlapping tensors", () => {
    const h = JSON.stringify({
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
    });
    throwsInput(
      () => parseSafetensors(handMade(h, new Uint8Array(8)), FILE),
      '"a" [0, 8) and "b" [4, 8) overlap',
    );
  });

  await t.step("metadata that is not all strings", () => {
    const h = JSON.stringify({ __metadata__: { format: 1 } });
    throwsInput(
      () => parseSafetensors(handMade(h, new Uint8Array()), FILE),
      "__metadata__.format: expected a string",
    );
  });
});

Deno.test("toFloat32() decodes F16 bit patterns exactly", async (t) => {
  const view = (bits: number[]): TensorView => ({
    dtype: "F16",
    shape: [bits.length],
    data: u16Bytes(bits),
  });

  await t.step("known values: one, max, subnormals, infinities, zeros, NaN", () => {
    const cases: [number, number][] = [
      [0x3c00, 1],
      [0xc000, -2],
      [0x7bff, 65504],
      [0x0001, 2 ** -24],
      [0x03ff, 1023 * 2 ** -24],
      [0x0400, 2 ** -14],
      [0x3555, 0.333251953125],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
      [0x0000, 0],
    ];
    const got = toFloat32(view(cases.map((c) => c[0])), FILE, "h");
    cases.forEach(([bits, want], i) => assert.equal(got[i], want, `0x${bits.toString(16)}`));
    const [negZero, nan] = toFloat32(view([0x8000, 0x7e00]), FILE, "h");
    assert.ok(Object.is(negZero, -0));
    assert.ok(Number.isNaN(nan));
  });

  await t.step("every one of the 65536 patterns matches Float16Array", () => {
    const all = Array.from({ length: 65536 }, (_, i) => i);
    const got = toFloat32(view(all), FILE, "h");
    for (const h of all) {
      const want = refF16Value(h);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(got[h]!), `0x${h.toString(16)}`);
      else assert.ok(Object.is(got[h], want), `0x${h.toString(16)}: ${got[h]} vs ${want}`);
    }
  });
});

Deno.test("toFloat32() decodes BF16 bit patterns exactly", async (t) => {
  const view = (bits: number[]): TensorView => ({
    dtype: "BF16",
    shape: [bits.length],
    data: u16Bytes(bits),
  });

  await t.step("known values: one, pi, max, subnormal, infinities, NaN", () => {
    const cases: [number, number][] = [
      [0x3f80, 1],
      [0xc000, -2],
      [0x4049, 3.140625],
      [0x7f7f, (2 - 2 ** -7) * 2 ** 127],
      [0x0001, 2 ** -133],
      [0x0080, 2 ** -126],
      [0x7f80, Infinity],
      [0xff80, -Infinity],
    ];
    const got = toFloat32(view(cases.map((c) => c[0])), FILE, "b");
    cases.forEach(([bits, want], i) => assert.equal(got[i], want, `0x${bits.toString(16)}`));
    const [negZero, nan] = toFloat32(view([0x8000, 0x7fc0]), FILE, "b");
    assert.ok(Object.is(negZero, -0));
    assert.ok(Number.isNaN(nan));
  });
});

Deno.test("toFloat32() rejects non-float dtypes", async (t) => {
  for (const dtype of ["I64", "U8", "F64", "I32", "BOOL"] as const) {
    await t.step(dtype, () => {
      const size = { I64: 8, U8: 1, F64: 8, I32: 4, BOOL: 1 }[dtype];
      const v: TensorView = { dtype, shape: [3], data: new Uint8Array(3 * size) };
      throwsInput(() => toFloat32(v, FILE, "ids"), `tensor "ids": unsupported dtype ${dtype}`);
    });
  }
});

Deno.test("f32BitsToF16Bits() rounds to nearest, ties to even", async (t) => {
  const enc = (x: number) => f32BitsToF16Bits(f32Bits(x));

  await t.step("known cases", () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [1 + 2 ** -11, 0x3c00], // tie between 0x3C00 and 0x3C01: even
      [1 + 3 * 2 ** -11, 0x3c02], // tie between 0x3C01 and 0x3C02: even
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
      [65504, 0x7bff],
      [65519, 0x7bff],
      [65520, 0x7c00], // tie between max and 2^16: rounds to inf
      [1e6, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal
      [2 ** -25 * (1 + 2 ** -20), 0x0001],
      [3 * 2 ** -25, 0x0002], // 1.5 ulp: tie, to even 2
      [1023.5 * 2 ** -24, 0x0400], // largest subnormal + half ulp carries into the smallest normal
      [1e-8, 0x0000],
      [-0, 0x8000],
      [-1e-10, 0x8000],
    ];
    for (const [x, want] of cases) {
      assert.equal(enc(x), want, `${x}: 0x${enc(x).toString(16)} vs 0x${want.toString(16)}`);
    }
    const nan = enc(NaN);
    assert.equal(nan & 0x7c00, 0x7c00);
    assert.notEqual(nan & 0x3ff, 0);
  });

  await t.step("every finite F16 value encodes back to its own bits", () => {
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue;
      assert.equal(enc(refF16Value(h)), h, `0x${h.toString(16)}`);
    }
  });

  await t.step("random float32 values match Float16Array", () => {
    const rng = new Rng(7);
    const bits = new Uint32Array(1);
    const f = new Float32Array(bits.buffer);
    for (let i = 0; i < 200_000; i++) {
      // Exponents concentrated around the F16 range, so subnormals and overflow are covered.
      const exp = rng.int(127 - 30, 127 + 18);
      bits[0] = ((rng.int(0, 1) << 31) | (exp << 23) | rng.int(0, 0x7fffff)) >>> 0;
      assert.equal(f32BitsToF16Bits(bits[0]!), refF16Bits(f[0]!), `${f[0]}`);
    }
  });
});

Deno.test("f32BitsToBf16Bits() rounds to nearest, ties to even", async (t) => {
  const enc = (x: number) => f32BitsToBf16Bits(f32Bits(x));

  await t.step("known cases", () => {
    const cases: [number, number][] = [
      [1, 0x3f80],
      [Math.PI, 0x4049],
      [1 + 2 ** -8, 0x3f80], // tie: even
      [1 + 3 * 2 ** -8, 0x3f82], // tie: even
      [1 + 2 ** -8 + 2 ** -20, 0x3f81],
      [3.4028234663852886e38, 0x7f80], // f32 max rounds up to inf
      [(2 - 2 ** -7) * 2 ** 127, 0x7f7f],
      [2 ** -133, 0x0001],
      [-Infinity, 0xff80],
      [-0, 0x8000],
    ];
    for (const [x, want] of cases) {
      assert.equal(enc(x), want, `${x}: 0x${enc(x).toString(16)} vs 0x${want.toString(16)}`);
    }
    const nan = enc(NaN);
    assert.equal(nan & 0x7f80, 0x7f80);
    assert.notEqual(nan & 0x7f, 0);
    // A NaN whose payload sits only in the low 16 bits must stay a NaN.
    const lowNan = f32BitsToBf16Bits(0x7f800001);
    assert.equal(lowNan & 0x7f80, 0x7f80);
    assert.notEqual(lowNan & 0x7f, 0);
  });

  await t.step("random float32 values match a nearest-neighbour reference", () => {
    const rng = new Rng(11);
    const bits = new Uint32Array(1);
    const f = new Float32Array(bits.buffer);
    for (let i = 0; i < 100_000; i++) {
      bits[0] = ((rng.int(0, 1) << 31) | (rng.int(0, 254) << 23) | rng.int(0, 0x7fffff)) >>> 0;
      if (bits[0]! >>> 16 === 0x7f7f || bits[0]! >>> 16 === 0xff7f) continue; // neighbour is inf
      assert.equal(f32BitsToBf16Bits(bits[0]!), refBf16Bits(f[0]!), `${f[0]}`);
    }
  });
});

Deno.test("encodeSafetensors() writes files parseSafetensors() reads back", async (t) => {
  const rng = new Rng(3);
  const values = Float32Array.from({ length: 24 }, () => rng.normal());

  await t.step("F32 round trip is exact and keeps metadata", () => {
    const bytes = encodeSafetensors(
      [{ name: "w", dtype: "F32", shape: [4, 6], data: values }],
      { format: "pt", note: "x" },
    );
    const { tensors, metadata } = parseSafetensorsWithMetadata(bytes, FILE);
    assert.deepEqual(metadata, { format: "pt", note: "x" });
    const w = tensors.get("w")!;
    assert.deepEqual(w.shape, [4, 6]);
    assert.deepEqual(toFloat32(w, FILE, "w"), values);
  });

  await t.step("F16 and BF16 bits equal the reference roundings", () => {
    const bytes = encodeSafetensors([
      { name: "h", dtype: "F16", shape: [24], data: values },
      { name: "b", dtype: "BF16", shape: [24], data: values },
    ]);
    const m = parseSafetensors(bytes, FILE);
    assert.deepEqual(u16Of(m.get("h")!), Array.from(values, refF16Bits));
    assert.deepEqual(u16Of(m.get("b")!), Array.from(values, refBf16Bits));
  });

  await t.step("pads the header with spaces to a multiple of 8 and sorts tensors by name", () => {
    const bytes = encodeSafetensors([
      { name: "zeta", dtype: "F16", shape: [3], data: new Float32Array(3) },
      { name: "alpha", dtype: "F32", shape: [1], data: new Float32Array(1) },
      { name: "mid", dtype: "BF16", shape: [2], data: new Float32Array(2) },
    ]);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(n % 8, 0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.match(text, /^\{.*\} *$/);
    const header = JSON.parse(text);
    assert.deepEqual(Object.keys(header), ["alpha", "mid", "zeta"]);
    assert.deepEqual(header.alpha.data_offsets, [0, 4]);
    assert.deepEqual(header.mid.data_offsets, [4, 8]);
    assert.deepEqual(header.zeta.data_offsets, [8, 14]);
    assert.equal(bytes.length, 8 + n + 14);
  });

  await t.step("layoutSafetensors() reports the size encodeSafetensors() produces", () => {
    const ts = [{ name: "a", dtype: "BF16" as const, shape: [5], data: new Float32Array(5) }];
    assert.equal(layoutSafetensors(ts).totalBytes, encodeSafetensors(ts).length);
  });

  await t.step("rejects a data length that disagrees with the shape", () => {
    assert.throws(
      () =>
        encodeSafetensors([{ name: "w", dtype: "F32", shape: [2, 2], data: new Float32Array(3) }]),
      (e: unknown) =>
        e instanceof RangeError && e.message.includes("data has 3 values but shape [2,2] needs 4"),
    );
  });

  await t.step("rejects duplicate names", () => {
    const t1 = { name: "w", dtype: "F32" as const, shape: [1], data: new Float32Array(1) };
    assert.throws(
      () => encodeSafetensors([t1, t1]),
      (e: unknown) => e instanceof RangeError && e.message.includes('duplicate tensor name "w"'),
    );
  });
});

Deno.test("SafetensorsFile reads single tensors as parseSafetensors() does", async (t) => {
  const rng = new Rng(9);
  const values = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  // 3·2^20 + 5 elements: widening crosses the 2^20-element chunk boundary
  const big = values(3 * 2 ** 20 + 5);
  const bytes = encodeSafetensors([
    { name: "a", dtype: "F32", shape: [3, 5], data: values(15) },
    { name: "b", dtype: "BF16", shape: [big.length], data: big },
    { name: "c", dtype: "F16", shape: [4, 2], data: values(8) },
  ]);
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  await Deno.writeFile(path, bytes);
  const parsed = parseSafetensors(bytes, path);
  const file = await SafetensorsFile.open(path);
  try {
    await t.step("float32 of every dtype", async () => {
      for (const name of ["a", "b", "c"]) {
        assert.deepEqual(await file.readFloat32(name), toFloat32(parsed.get(name)!, path, name));
      }
    });
    await t.step("half-precision patterns as stored", async () => {
      for (const name of ["b", "c"]) {
        const bits = await file.readHalf(name);
        assert.deepEqual(new Uint8Array(bits.buffer), parsed.get(name)!.data);
      }
    });
    await t.step("a missing tensor or a float32 read as half is an InputError", async () => {
      await assert.rejects(file.readFloat32("z"), InputError, `${path}: missing tensor z`);
      await assert.rejects(file.readHalf("a"), InputError, `unsupported dtype F32`);
    });
  } finally {
    file.close();
  }
  await t.step("a truncated file is refused when opened", async () => {
    await Deno.writeFile(path, bytes.subarray(0, bytes.length - 3));
    await assert.rejects(SafetensorsFile.open(path), InputError, "file truncated?");
  });
  await Deno.remove(path);
});
