/**
 * PromQL's vocabulary and tokens for test/k8s/promql.ts: durations, functions with their argument
 * types, aggregation operators, keywords. A `[...]` is one token (a range or a subquery, checked by
 * the parser), so an unbalanced bracket fails here.
 */
export type ValueType = "scalar" | "vector" | "matrix" | "string";

export const DURATION = /^(?:\d+(?:ms|[smhdwy]))+$/;
export const AGGREGATIONS = new Set(["sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values"]);
export const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless", "atan2"]);

/** Argument types and result type of the functions the project may use (Prometheus 2.x/3.x). */
export const FUNCTIONS: Record<string, { args: ValueType[]; optional?: number; returns: ValueType }> = {
  rate: { args: ["matrix"], returns: "vector" },
  irate: { args: ["matrix"], returns: "vector" },
  increase: { args: ["matrix"], returns: "vector" },
  delta: { args: ["matrix"], returns: "vector" },
  idelta: { args: ["matrix"], returns: "vector" },
  deriv: { args: ["matrix"], returns: "vector" },
  changes: { args: ["matrix"], returns: "vector" },
  resets: { args: ["matrix"], returns: "vector" },
  predict_linear: { args: ["matrix", "scalar"], returns: "vector" },
  avg_over_time: { args: ["matrix"], returns: "vector" },
  min_over_time: { args: ["matrix"], returns: "vector" },
  max_over_time: { args: ["matrix"], returns: "vector" },
  sum_over_time: { args: ["matrix"], returns: "vector" },
  count_over_time: { args: ["matrix"], returns: "vector" },
  last_over_time: { args: ["matrix"], returns: "vector" },
  present_over_time: { args: ["matrix"], returns: "vector" },
  absent_over_time: { args: ["matrix"], returns: "vector" },
  quantile_over_time: { args: ["scalar", "matrix"], returns: "vector" },
  histogram_quantile: { args: ["scalar", "vector"], returns: "vector" },
  absent: { args: ["vector"], returns: "vector" },
  abs: { args: ["vector"], returns: "vector" },
  ceil: { args: ["vector"], returns: "vector" },
  floor: { args: ["vector"], returns: "vector" },
  round: { args: ["vector", "scalar"], optional: 1, returns: "vector" },
  sqrt: { args: ["vector"], returns: "vector" },
  clamp: { args: ["vector", "scalar", "scalar"], returns: "vector" },
  clamp_min: { args: ["vector", "scalar"], returns: "vector" },
  clamp_max: { args: ["vector", "scalar"], returns: "vector" },
  sort: { args: ["vector"], returns: "vector" },
  sort_desc: { args: ["vector"], returns: "vector" },
  timestamp: { args: ["vector"], returns: "vector" },
  scalar: { args: ["vector"], returns: "scalar" },
  vector: { args: ["scalar"], returns: "vector" },
  time: { args: [], returns: "scalar" },
  label_replace: { args: ["vector", "string", "string", "string", "string"], returns: "vector" },
};

export type TokenKind = "ident" | "number" | "duration" | "string" | "range" | "op" | "(" | ")" | "{" | "}" | "," | "eof";
export interface Token {
  kind: TokenKind;
  text: string;
  at: number;
}

const OPERATORS = ["==", "!=", ">=", "<=", "=~", "!~", "=", ">", "<", "+", "-", "*", "/", "%", "^"];

export function lex(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === "#") throw new Error(`comment at ${i} (not allowed in an expression)`);
    if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      let value = "";
      while (j < src.length && src[j] !== c) {
        if (src[j] === "\\" && c !== "`") {
          value += src[j + 1] ?? "";
          j += 2;
        } else value += src[j++];
      }
      if (j >= src.length) throw new Error(`unterminated string at ${i}`);
      tokens.push({ kind: "string", text: value, at: i });
      i = j + 1;
      continue;
    }
    if (c === "[") {
      const end = src.indexOf("]", i);
      const inner = end < 0 ? "" : src.slice(i + 1, end);
      if (end < 0 || inner.includes("[")) throw new Error(`unbalanced "[" at ${i}`);
      tokens.push({ kind: "range", text: inner.trim(), at: i });
      i = end + 1;
      continue;
    }
    if (c === "]") throw new Error(`unbalanced "]" at ${i}`);
    const duration = /^(?:\d+(?:ms|[smhdwy]))+(?![\w.])/.exec(src.slice(i));
    if (duration) {
      tokens.push({ kind: "duration", text: duration[0], at: i });
      i += duration[0].length;
      continue;
    }
    const number = /^(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)(?![\w.])/.exec(src.slice(i));
    if (number) {
      tokens.push({ kind: "number", text: number[0], at: i });
      i += number[0].length;
      continue;
    }
    const ident = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(src.slice(i));
    if (ident) {
      tokens.push({ kind: "ident", text: ident[0], at: i });
      i += ident[0].length;
      continue;
    }
    if ("(){},".includes(c)) {
      tokens.push({ kind: c as TokenKind, text: c, at: i });
      i++;
      continue;
    }
    const op = OPERATORS.find((o) => src.startsWith(o, i));
    if (op) {
      tokens.push({ kind: "op", text: op, at: i });
      i += op.length;
      continue;
    }
    throw new Error(`unexpected character ${JSON.stringify(c)} at ${i}`);
  }
  tokens.push({ kind: "eof", text: "", at: src.length });
  return tokens;
}

