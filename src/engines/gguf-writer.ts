/**
 * A small GGUF v3 writer in plain TypeScript: header, typed key/value metadata, tensor infos and
 * tensor data aligned to 32 bytes. Tensor data is produced in chunks and streamed to the file, so
 * a 100 MB model never sits in memory at once. Supports F32, F16 and Q8_0 tensors, which is all
 * the generated models need.
 */
import { open, rename, mkdir, rm } from "node:fs/promises";
import { dirname } from "node:path";

export const GGUF_ALIGNMENT = 32;

const enum ValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

export type GgufScalar =
  | { type: "u32"; value: number }
  | { type: "i32"; value: number }
  | { type: "f32"; value: number }
  | { type: "u64"; value: bigint | number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string };

export type GgufValue =
  | GgufScalar
  | { type: "array"; itemType: "string"; value: readonly string[] }
  | { type: "array"; itemType: "f32" | "i32" | "u32"; value: ArrayLike<number> };

export const gguf = {
  u32: (value: number): GgufValue => ({ type: "u32", value }),
  i32: (value: number): GgufValue => ({ type: "i32", value }),
  f32: (value: number): GgufValue => ({ type: "f32", value }),
  u64: (value: number | bigint): GgufValue => ({ type: "u64", value }),
  bool: (value: boolean): GgufValue => ({ type: "bool", value }),
  str: (value: string): GgufValue => ({ type: "string", value }),
  strings: (value: readonly string[]): GgufValue => ({ type: "array", itemType: "string", value }),
  f32s: (value: ArrayLike<number>): GgufValue => ({ type: "array", itemType: "f32", value }),
  i32s: (value: ArrayLike<number>): GgufValue => ({ type: "array", itemType: "i32", value }),
};

export type TensorType = "F32" | "F16" | "Q8_0";
const TENSOR_TYPE_ID: Record<TensorType, number> = { F32: 0, F16: 1, Q8_0: 8 };

export interface GgufTensor {
  name: string;
  /** ggml order: dims[0] is the innermost (contiguous) dimension. */
  dims: number[];
  type: TensorType;
  /** Yields the tensor's bytes in order; their total must equal tensorByteLength(dims, type). */
  data: () => Iterable<Uint8Array>;
}

export function tensorByteLength(dims: readonly number[], type: TensorType): number {
  const n = dims.reduce((a, b) => a * b, 1);
  if (type === "F32") return n * 4;
  if (type === "F16") return n * 2;
  if ((dims[0] ?? 0) % 32 !== 0) throw new Error(`Q8_0 needs the first dimension to be a multiple of 32, got ${dims[0]}`);
  return (n / 32) * 34;
}

const align = (n: number) => Math.ceil(n / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;

/** Grows as bytes are appended; used for the header (metadata and tensor infos). */
class ByteSink {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private ensure(extra: number) {
    if (this.length + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u8(v: number) {
    this.ensure(1);
    this.buf.writeUInt8(v, this.length);
    this.length += 1;
  }
  u32(v: number) {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }
  i32(v: number) {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.length);
    this.length += 4;
  }
  f32(v: number) {
    this.ensure(4);
    this.buf.writeFloatLE(v, this.length);
    this.length += 4;
  }
  u64(v: number | bigint) {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }
  str(s: string) {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.ensure(bytes.length);
    bytes.copy(this.buf, this.length);
    this.length += bytes.length;
  }
  pad(to: number) {
    const target = Math.ceil(this.length / to) * to;
    this.ensure(target - this.length);
    this.buf.fill(0, this.length, target);
    this.length = target;
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function writeValue(sink: ByteSink, value: GgufValue): void {
  switch (value.type) {
    case "u32":
      sink.u32(ValueType.UINT32);
      sink.u32(value.value);
      return;
    case "i32":
      sink.u32(ValueType.INT32);
      sink.i32(value.value);
      return;
    case "f32":
      sink.u32(ValueType.FLOAT32);
      sink.f32(value.value);
      return;
    case "u64":
      sink.u32(ValueType.UINT64);
      sink.u64(value.value);
      return;
    case "bool":
      sink.u32(ValueType.BOOL);
      sink.u8(value.value ? 1 : 0);
      return;
    case "string":
      sink.u32(ValueType.STRING);
      sink.str(value.value);
      return;
    case "array": {
      sink.u32(ValueType.ARRAY);
      if (value.itemType === "string") {
        sink.u32(ValueType.STRING);
        sink.u64(value.value.length);
        for (const s of value.value) sink.str(s);
        return;
      }
      const items = value.value;
      sink.u32(value.itemType === "f32" ? ValueType.FLOAT32 : value.itemType === "i32" ? ValueType.INT32 : ValueType.UINT32);
      sink.u64(items.length);
      for (let i = 0; i < items.length; i++) {
        const v = items[i] as number;
        if (value.itemType === "f32") sink.f32(v);
        else if (value.itemType === "i32") sink.i32(v);
        else sink.u32(v);
      }
      return;
    }
  }
}

/** The header bytes (everything before the tensor data), already padded to the alignment. */
export function encodeGgufHeader(metadata: ReadonlyArray<readonly [string, GgufValue]>, tensors: readonly GgufTensor[]): Buffer {
  const sink = new ByteSink();
  sink.u32(0x46554747); // "GGUF" little-endian
  sink.u32(3);
  sink.u64(tensors.length);
  sink.u64(metadata.length);
  for (const [key, value] of metadata) {
    sink.str(key);
    writeValue(sink, value);
  }
  let offset = 0;
  for (const t of tensors) {
    sink.str(t.name);
    sink.u32(t.dims.length);
    for (const d of t.dims) sink.u64(d);
    sink.u32(TENSOR_TYPE_ID[t.type]);
    sink.u64(offset);
    offset += align(tensorByteLength(t.dims, t.type));
  }
  sink.pad(GGUF_ALIGNMENT);
  return Buffer.from(sink.bytes());
}

/**
 * Write a GGUF file. It is written to a temporary name first and renamed into place, so a reader
 * never sees half a file and a crash leaves no corrupt model behind.
 */
export async function writeGguf(
  path: string,
  metadata: ReadonlyArray<readonly [string, GgufValue]>,
  tensors: readonly GgufTensor[],
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const file = await open(tmp, "w");
  try {
    let position = 0;
    const put = async (bytes: Uint8Array) => {
      let written = 0;
      while (written < bytes.length) {
        const r = await file.write(bytes, written, bytes.length - written, position);
        written += r.bytesWritten;
        position += r.bytesWritten;
      }
    };
    await put(encodeGgufHeader(metadata, tensors));
    for (const t of tensors) {
      const expected = tensorByteLength(t.dims, t.type);
      let got = 0;
      for (const chunk of t.data()) {
        got += chunk.length;
        await put(chunk);
      }
      if (got !== expected) throw new Error(`tensor ${t.name}: wrote ${got} bytes, expected ${expected}`);
      const padding = align(expected) - expected;
      if (padding > 0) await put(new Uint8Array(padding));
    }
    await file.close();
    await rename(tmp, path);
  } catch (error) {
    await file.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw error;
  }
}

/** Deterministic 32-bit PRNG (mulberry32): the same seed gives the same weights on every machine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** IEEE 754 half from a JS number (round to nearest even), as used by F16 tensors and Q8_0 scales. */
export function toFloat16Bits(value: number): number {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  f32[0] = value;
  const x = u32[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half >>> 10;
  return sign | half;
}

const CHUNK_ELEMENTS = 1 << 18;

/** F32 tensor filled with one constant (e.g. norm weights of 1). */
export function constantF32(n: number, value: number): () => Iterable<Uint8Array> {
  return function* () {
    for (let start = 0; start < n; start += CHUNK_ELEMENTS) {
      const count = Math.min(CHUNK_ELEMENTS, n - start);
      yield new Uint8Array(new Float32Array(count).fill(value).buffer);
    }
  };
}

/** F32 tensor of uniform values in [-scale, scale] from a seeded PRNG. */
export function randomF32(n: number, seed: number, scale: number): () => Iterable<Uint8Array> {
  return function* () {
    const next = prng(seed);
    for (let start = 0; start < n; start += CHUNK_ELEMENTS) {
      const count = Math.min(CHUNK_ELEMENTS, n - start);
      const values = new Float32Array(count);
      for (let i = 0; i < count; i++) values[i] = (next() * 2 - 1) * scale;
      yield new Uint8Array(values.buffer);
    }
  };
}

/**
 * Q8_0 tensor of uniform values in [-scale, scale]: each block of 32 is one f16 scale (scale/127)
 * followed by 32 signed bytes, drawn directly so no float pass is needed.
 */
export function randomQ8_0(n: number, seed: number, scale: number): () => Iterable<Uint8Array> {
  if (n % 32 !== 0) throw new Error("Q8_0 needs a multiple of 32 elements");
  return function* () {
    const next = prng(seed);
    const d = toFloat16Bits(scale / 127);
    const blocksPerChunk = 8192;
    const blocks = n / 32;
    for (let b = 0; b < blocks; b += blocksPerChunk) {
      const count = Math.min(blocksPerChunk, blocks - b);
      const out = new Uint8Array(count * 34);
      for (let k = 0; k < count; k++) {
        const base = k * 34;
        out[base] = d & 0xff;
        out[base + 1] = d >>> 8;
        for (let i = 0; i < 32; i++) out[base + 2 + i] = (Math.floor(next() * 255) - 127) & 0xff;
      }
      yield out;
    }
  };
}
