/**
 * The generated models of the GPU benchmark. The distilgpt2-sized Q8_0 model is the project's own
 * (src/engines/generated-models.ts). The ~1B model is the llama architecture at TinyLlama's shape
 * (2048 wide, 22 layers, 32 heads, 4 KV heads, feed-forward 5632) over GPT-2's 50,257-token
 * vocabulary, output tied to the embedding: 1.07 B parameters, F16, deterministic weights.
 * F16 values come from a 65,536-entry table of evenly spaced halves indexed by the PRNG's high
 * bits, so 2 GB is written in seconds rather than minutes of per-element float conversion.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { prng, toFloat16Bits, writeGguf, gguf, type GgufTensor } from "../../src/engines/gguf-writer.js";
import { ensureDistilgpt2SizedModel, gpt2Vocabulary, llamaModelContents, type LlamaModelSpec } from "../../src/engines/generated-models.js";

export const LLAMA_1B_FILE = "llama-1b-sized-f16-v1.gguf";

export async function llama1bSpec(shape: Partial<LlamaModelSpec> = {}): Promise<LlamaModelSpec> {
  return {
    name: "llama-1b-sized",
    vocab: await gpt2Vocabulary(),
    embedding: 2048,
    layers: 22,
    heads: 32,
    kvHeads: 4,
    feedForward: 5632,
    contextLength: 4096,
    // The F16 weights are written below; the project's builder lays out F32 names and shapes.
    weightType: "F32",
    seed: 1_000_000_007,
    scale: 0.02,
    ...shape,
  };
}

export function parameterCount(tensors: readonly GgufTensor[]): number {
  return tensors.reduce((sum, t) => sum + t.dims.reduce((a, b) => a * b, 1), 0);
}

const F16_CHUNK = 1 << 20;

/** F16 tensor of values evenly spread over [-scale, scale], picked by a seeded PRNG. */
const tables = new Map<number, Uint16Array>();
function halfTable(scale: number): Uint16Array {
  let table = tables.get(scale);
  if (!table) {
    table = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) table[i] = toFloat16Bits(((i + 0.5) / 65536) * 2 * scale - scale);
    tables.set(scale, table);
  }
  return table;
}

export function randomF16(n: number, seed: number, scale: number): () => Iterable<Uint8Array> {
  return function* () {
    const table = halfTable(scale);
    const next = prng(seed);
    for (let start = 0; start < n; start += F16_CHUNK) {
      const count = Math.min(F16_CHUNK, n - start);
      const out = new Uint16Array(count);
      // One 32-bit draw picks two halves: half the PRNG calls for 1 B weights.
      for (let i = 0; i < count; i += 2) {
        const r = (next() * 4294967296) >>> 0;
        out[i] = table[r >>> 16] as number;
        if (i + 1 < count) out[i + 1] = table[r & 0xffff] as number;
      }
      yield new Uint8Array(out.buffer);
    }
  };
}

/** The spec's tensors with every matrix in F16 (norms stay F32) and file_type "mostly F16". */
export function f16Contents(spec: LlamaModelSpec): ReturnType<typeof llamaModelContents> {
  const { metadata, tensors } = llamaModelContents({ ...spec, weightType: "F32" });
  let seed = spec.seed;
  return {
    metadata: metadata.map(([k, v]) => (k === "general.file_type" ? ([k, gguf.u32(1)] as const) : ([k, v] as const))),
    tensors: tensors.map((t) => {
      if (t.dims.length < 2) return t;
      const n = t.dims.reduce((a, b) => a * b, 1);
      return { ...t, type: "F16" as const, data: randomF16(n, seed++, spec.scale) };
    }),
  };
}

export async function ensureLlama1bModel(dir: string, file = LLAMA_1B_FILE, shape: Partial<LlamaModelSpec> = {}): Promise<string> {
  const path = join(dir, file);
  if (existsSync(path)) return path;
  const { metadata, tensors } = f16Contents(await llama1bSpec(shape));
  await writeGguf(path, metadata, tensors);
  return path;
}

export { ensureDistilgpt2SizedModel };
