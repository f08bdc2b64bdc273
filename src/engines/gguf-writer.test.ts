import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeGgufHeader, gguf, prng, randomQ8_0, tensorByteLength, toFloat16Bits, writeGguf } from "./gguf-writer.js";
import { demoModelSpec, demoVocabulary, writeLlamaModel } from "./generated-models.js";

test("float16 conversion matches known values", () => {
  assert.equal(toFloat16Bits(1), 0x3c00);
  assert.equal(toFloat16Bits(-2), 0xc000);
  assert.equal(toFloat16Bits(0), 0);
  assert.equal(toFloat16Bits(65504), 0x7bff);
  assert.equal(toFloat16Bits(1e6), 0x7c00);
  assert.equal(toFloat16Bits(5.960464477539063e-8), 0x0001);
  assert.equal(toFloat16Bits(0.1), 0x2e66);
});

test("prng is deterministic and in [0, 1)", () => {
  const a = prng(42);
  const b = prng(42);
  for (let i = 0; i < 1000; i++) {
    const x = a();
    assert.equal(x, b());
    assert.ok(x >= 0 && x < 1);
  }
});

test("Q8_0 blocks are 34 bytes: f16 scale then 32 int8", () => {
  assert.equal(tensorByteLength([64, 2], "Q8_0"), 4 * 34);
  assert.throws(() => tensorByteLength([48], "Q8_0"));
  const bytes = Buffer.concat([...randomQ8_0(64, 1, 0.127)()]);
  assert.equal(bytes.length, 68);
  assert.equal(bytes.readUInt16LE(0), toFloat16Bits(0.001));
});

test("header layout: magic, version 3, counts, aligned to 32", () => {
  const header = encodeGgufHeader([["general.architecture", gguf.str("llama")]], [
    { name: "t", dims: [4], type: "F32", data: () => [new Uint8Array(16)] },
  ]);
  assert.equal(header.toString("latin1", 0, 4), "GGUF");
  assert.equal(header.readUInt32LE(4), 3);
  assert.equal(header.readBigUInt64LE(8), 1n);
  assert.equal(header.readBigUInt64LE(16), 1n);
  assert.equal(header.length % 32, 0);
});

test("writeGguf rejects a tensor whose data has the wrong size and leaves no file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "gguf-"));
  try {
    const path = join(dir, "bad.gguf");
    await assert.rejects(writeGguf(path, [], [{ name: "t", dims: [4], type: "F32", data: () => [new Uint8Array(8)] }]), /expected 16/);
    assert.throws(() => readFileSync(path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the demo model is byte-for-byte deterministic", async () => {
  const dir = mkdtempSync(join(tmpdir(), "gguf-"));
  try {
    await writeLlamaModel(join(dir, "a.gguf"), demoModelSpec());
    await writeLlamaModel(join(dir, "b.gguf"), demoModelSpec());
    const hash = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");
    assert.equal(hash(join(dir, "a.gguf")), hash(join(dir, "b.gguf")));
    const vocab = demoVocabulary();
    assert.equal(vocab.tokens.length, new Set(vocab.tokens).size, "tokens are unique");
    assert.equal(vocab.tokens.length, vocab.scores.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
