/**
 * A small PromQL parser for the monitoring checks: enough of the language for dashboards and alert
 * rules (selectors, ranges, subqueries, offsets, functions, aggregations, binary operators with
 * on/ignoring/group_left/group_right/bool). It fails on what Prometheus would refuse to load
 * (unbalanced brackets, unknown functions, bad durations, a range vector where an instant vector is
 * needed) and infers which label names each sub-expression carries, so that `by (...)`, `on (...)`
 * and matchers can be checked against the labels the code really exports.
 */

import { AGGREGATIONS, DURATION, FUNCTIONS, KEYWORDS, lex, type Token, type TokenKind, type ValueType } from "./promql-language.js";

export type { ValueType };

export interface Matcher {
  label: string;
  op: "=" | "!=" | "=~" | "!~";
  value: string;
}

export interface Selector {
  name: string | undefined;
  matchers: Matcher[];
}

/** What is known about the metrics an expression may use: sample name → label names on its samples. */
export interface MetricCatalog {
  labelsOf(name: string): ReadonlySet<string> | undefined;
  /** Labels Prometheus adds at scrape time (job, instance, …): valid on every selector. */
  targetLabels: ReadonlySet<string>;
}

export interface Analysis {
  selectors: Selector[];
  type: ValueType;
  /** Problems found: an empty list means the expression parses and every name and label is known. */
  errors: string[];
}

// ------------------------------------------------------------------ parser + analysis

interface Node {
  type: ValueType;
  labels: Set<string>;
  /** Set for a bare vector selector (a range may follow it). */
  selector?: Selector & { hasRange: boolean };
}

const BINARY_PRECEDENCE: Record<string, number> = {
  or: 1, and: 2, unless: 2,
  "==": 3, "!=": 3, ">": 3, "<": 3, ">=": 3, "<=": 3,
  "+": 4, "-": 4,
  "*": 5, "/": 5, "%": 5, atan2: 5,
  "^": 6,
};
const COMPARISONS = new Set(["==", "!=", ">", "<", ">=", "<="]);
const SET_OPS = new Set(["and", "or", "unless"]);

class Parser {
  private pos = 0;
  readonly selectors: Selector[] = [];
  readonly errors: string[] = [];

  constructor(
    private readonly tokens: Token[],
    private readonly catalog: MetricCatalog,
  ) {}

  private peek(offset = 0): Token {
    return this.tokens[Math.min(this.pos + offset, this.tokens.length - 1)]!;
  }
  private next(): Token {
    return this.tokens[this.pos++]!;
  }
  private expect(kind: TokenKind, text?: string): Token {
    const t = this.next();
    if (t.kind !== kind || (text !== undefined && t.text !== text)) throw new Error(`expected ${text ?? kind} at ${t.at}, found ${JSON.stringify(t.text || t.kind)}`);
    return t;
  }
  private isOp(text: string): boolean {
    const t = this.peek();
    return (t.kind === "op" || t.kind === "ident") && t.text === text;
  }

  parseAll(): Node {
    const node = this.parseExpr(1);
    if (this.peek().kind !== "eof") throw new Error(`unexpected ${JSON.stringify(this.peek().text)} at ${this.peek().at}`);
    return node;
  }

  private labelList(): string[] {
    this.expect("(");
    const labels: string[] = [];
    while (this.peek().kind !== ")") {
      const t = this.expect("ident");
      labels.push(t.text);
      if (this.peek().kind === ",") this.next();
      else break;
    }
    this.expect(")");
    return labels;
  }

  private requireLabels(labels: string[], have: Set<string>, where: string): void {
    for (const l of labels) if (!have.has(l)) this.errors.push(`unknown label "${l}" in ${where} (the expression there carries: ${[...have].sort().join(", ") || "no labels"})`);
  }

  private parseExpr(minPrec: number): Node {
    let lhs = this.parseUnary();
    for (;;) {
      const t = this.peek();
      const op = t.kind === "op" || (t.kind === "ident" && (SET_OPS.has(t.text) || t.text === "atan2")) ? t.text : undefined;
      const prec = op === undefined ? undefined : BINARY_PRECEDENCE[op];
      if (op === undefined || prec === undefined || prec < minPrec) return lhs;
      this.next();
      let bool = false;
      if (this.isOp("bool")) {
        if (!COMPARISONS.has(op)) throw new Error(`"bool" after non-comparison ${op}`);
        this.next();
        bool = true;
      }
      let matching: { mode: "on" | "ignoring"; labels: string[] } | undefined;
      let group: { side: "left" | "right"; labels: string[] } | undefined;
      if (this.isOp("on") || this.isOp("ignoring")) {
        const mode = this.next().text as "on" | "ignoring";
        matching = { mode, labels: this.labelList() };
        if (this.isOp("group_left") || this.isOp("group_right")) {
          const side = this.next().text === "group_left" ? "left" : "right";
          group = { side, labels: this.peek().kind === "(" ? this.labelList() : [] };
        }
      }
      const rhs = this.parseExpr(op === "^" ? prec : prec + 1);
      lhs = this.binary(op, lhs, rhs, bool, matching, group);
    }
  }

  private binary(
    op: string,
    lhs: Node,
    rhs: Node,
    bool: boolean,
    matching: { mode: "on" | "ignoring"; labels: string[] } | undefined,
    group: { side: "left" | "right"; labels: string[] } | undefined,
  ): Node {
    for (const side of [lhs, rhs]) if (side.type === "matrix" || side.type === "string") throw new Error(`binary ${op} on a ${side.type} (a range vector needs a function such as rate())`);
    const vectors = lhs.type === "vector" && rhs.type === "vector";
    if (SET_OPS.has(op) && !vectors) throw new Error(`"${op}" needs instant vectors on both sides`);
    if ((matching || group) && !vectors) throw new Error(`vector matching on ${op} needs vectors on both sides`);
    if (COMPARISONS.has(op) && lhs.type === "scalar" && rhs.type === "scalar" && !bool) throw new Error(`comparison of two scalars needs "bool"`);
    if (!vectors) return { type: lhs.type === "vector" || rhs.type === "vector" ? "vector" : "scalar", labels: new Set(lhs.type === "vector" ? lhs.labels : rhs.labels) };
    if (matching?.mode === "on") {
      this.requireLabels(matching.labels, lhs.labels, `on(...) left of ${op}`);
      this.requireLabels(matching.labels, rhs.labels, `on(...) right of ${op}`);
    } else if (matching) this.requireLabels(matching.labels, new Set([...lhs.labels, ...rhs.labels]), `ignoring(...) of ${op}`);
    if (group) this.requireLabels(group.labels, group.side === "left" ? rhs.labels : lhs.labels, `group_${group.side}(...)`);
    if (op === "or") return { type: "vector", labels: new Set([...lhs.labels, ...rhs.labels]) };
    if (SET_OPS.has(op) || (COMPARISONS.has(op) && !bool)) return { type: "vector", labels: new Set(lhs.labels) };
    const many = group?.side === "right" ? rhs : lhs;
    let labels = new Set(many.labels);
    if (!group && matching?.mode === "on") labels = new Set(matching.labels);
    if (!group && matching?.mode === "ignoring") for (const l of matching.labels) labels.delete(l);
    for (const l of group?.labels ?? []) labels.add(l);
    return { type: "vector", labels };
  }

  private parseUnary(): Node {
    if (this.isOp("-") || this.isOp("+")) {
      this.next();
      const inner = this.parseUnary();
      if (inner.type !== "scalar" && inner.type !== "vector") throw new Error(`unary minus on a ${inner.type}`);
      return { type: inner.type, labels: inner.labels };
    }
    return this.parsePostfix(this.parsePrimary());
  }

  private parsePostfix(node: Node): Node {
    let out = node;
    if (this.peek().kind === "range") {
      const t = this.next();
      const [range, step, extra] = t.text.split(":");
      if (extra !== undefined) throw new Error(`bad range [${t.text}] at ${t.at}`);
      if (!DURATION.test(range ?? "")) throw new Error(`bad duration "${range}" in [${t.text}] at ${t.at}`);
      if (step === undefined) {
        if (!out.selector || out.selector.hasRange) throw new Error(`range [${t.text}] at ${t.at} must follow a metric selector (or be a subquery [range:step])`);
        out.selector.hasRange = true;
        out = { type: "matrix", labels: out.labels };
      } else {
        if (step !== "" && !DURATION.test(step)) throw new Error(`bad subquery step "${step}" at ${t.at}`);
        if (out.type !== "vector") throw new Error(`subquery of a ${out.type} at ${t.at}`);
        out = { type: "matrix", labels: out.labels };
      }
    }
    if (this.isOp("offset")) {
      this.next();
      if (this.isOp("-")) this.next();
      const d = this.expect("duration");
      if (!DURATION.test(d.text)) throw new Error(`bad offset "${d.text}"`);
    }
    return out;
  }

  private parsePrimary(): Node {
    const t = this.peek();
    if (t.kind === "number") {
      this.next();
      return { type: "scalar", labels: new Set() };
    }
    if (t.kind === "duration") throw new Error(`duration "${t.text}" at ${t.at} outside a range or offset`);
    if (t.kind === "string") {
      this.next();
      return { type: "string", labels: new Set() };
    }
    if (t.kind === "(") {
      this.next();
      const inner = this.parseExpr(1);
      this.expect(")");
      return { type: inner.type, labels: inner.labels };
    }
    if (t.kind === "{") return this.parseSelector(undefined);
    if (t.kind !== "ident") throw new Error(`unexpected ${JSON.stringify(t.text || t.kind)} at ${t.at}`);
    if (/^(inf|nan)$/i.test(t.text)) {
      this.next();
      return { type: "scalar", labels: new Set() };
    }
    if (AGGREGATIONS.has(t.text)) return this.parseAggregation();
    if (KEYWORDS.has(t.text)) throw new Error(`unexpected keyword "${t.text}" at ${t.at}`);
    if (this.peek(1).kind === "(") return this.parseCall();
    this.next();
    return this.parseSelector(t.text);
  }

  private parseSelector(name: string | undefined): Node {
    const matchers: Matcher[] = [];
    if (this.peek().kind === "{") {
      this.next();
      while (this.peek().kind !== "}") {
        const label = this.expect("ident").text;
        const op = this.expect("op").text;
        if (!["=", "!=", "=~", "!~"].includes(op)) throw new Error(`bad matcher operator ${op} for ${label}`);
        const value = this.expect("string").text;
        if (op === "=~" || op === "!~") {
          try {
            new RegExp(`^(?:${value})$`);
          } catch {
            throw new Error(`bad regular expression ${JSON.stringify(value)} for ${label}`);
          }
        }
        matchers.push({ label, op: op as Matcher["op"], value });
        if (this.peek().kind === ",") this.next();
        else break;
      }
      this.expect("}");
    }
    const metric = name ?? matchers.find((m) => m.label === "__name__" && m.op === "=")?.value;
    if (metric === undefined) throw new Error("a selector without a metric name");
    const known = this.catalog.labelsOf(metric);
    if (!known) this.errors.push(`unknown metric "${metric}" (not exported by the code)`);
    const labels = new Set([...(known ?? []), ...this.catalog.targetLabels]);
    for (const m of matchers) {
      if (m.label !== "__name__" && !labels.has(m.label)) this.errors.push(`unknown label "${m.label}" on ${metric} (it has: ${[...(known ?? [])].sort().join(", ") || "no labels"})`);
    }
    const selector = { name: metric, matchers, hasRange: false };
    this.selectors.push(selector);
    return { type: "vector", labels, selector };
  }

  private parseAggregation(): Node {
    const op = this.next().text;
    let grouping: { mode: string; labels: string[] } | undefined;
    if (this.isOp("by") || this.isOp("without")) grouping = { mode: this.next().text, labels: this.labelList() };
    this.expect("(");
    let param: Node | undefined;
    const needsParam = ["topk", "bottomk", "quantile", "count_values"].includes(op);
    if (needsParam) {
      param = this.parseExpr(1);
      this.expect(",");
    }
    const inner = this.parseExpr(1);
    this.expect(")");
    if (this.isOp("by") || this.isOp("without")) {
      if (grouping) throw new Error(`${op}: grouping given twice`);
      grouping = { mode: this.next().text, labels: this.labelList() };
    }
    if (inner.type !== "vector") throw new Error(`${op}() needs an instant vector, got a ${inner.type}`);
    if (param && param.type !== (op === "count_values" ? "string" : "scalar")) throw new Error(`${op}(): bad parameter type ${param.type}`);
    if (grouping) this.requireLabels(grouping.labels, inner.labels, `${op} ${grouping.mode} (...)`);
    let labels: Set<string>;
    if (op === "topk" || op === "bottomk") labels = new Set(inner.labels);
    else if (!grouping) labels = new Set();
    else if (grouping.mode === "by") labels = new Set(grouping.labels);
    else labels = new Set([...inner.labels].filter((l) => !grouping.labels.includes(l)));
    return { type: "vector", labels };
  }

  private parseCall(): Node {
    const nameToken = this.next();
    const fn = FUNCTIONS[nameToken.text];
    if (!fn) throw new Error(`unknown function "${nameToken.text}" at ${nameToken.at}`);
    this.expect("(");
    const args: Node[] = [];
    while (this.peek().kind !== ")") {
      args.push(this.parseExpr(1));
      if (this.peek().kind === ",") this.next();
      else break;
    }
    this.expect(")");
    const min = fn.args.length - (fn.optional ?? 0);
    if (args.length < min || args.length > fn.args.length) throw new Error(`${nameToken.text}() takes ${min === fn.args.length ? min : `${min}–${fn.args.length}`} arguments, got ${args.length}`);
    args.forEach((a, i) => {
      if (a.type !== fn.args[i]) throw new Error(`${nameToken.text}() argument ${i + 1} must be a ${fn.args[i] === "matrix" ? "range vector (metric[5m])" : fn.args[i]}, got a ${a.type}`);
    });
    const first = args.find((a) => a.type === "vector" || a.type === "matrix");
    let labels = new Set(first?.labels ?? []);
    if (nameToken.text === "histogram_quantile") {
      if (!labels.has("le")) this.errors.push(`histogram_quantile() over an expression without the "le" label (aggregate with by (le) over a _bucket metric)`);
      labels.delete("le");
    }
    if (nameToken.text === "absent" || nameToken.text === "absent_over_time") labels = new Set();
    if (fn.returns !== "vector") labels = new Set();
    return { type: fn.returns, labels };
  }
}

/** Parses one expression; parse errors and unknown names/labels come back in `errors`. */
export function analyze(expr: string, catalog: MetricCatalog): Analysis {
  let parser: Parser | undefined;
  try {
    parser = new Parser(lex(expr), catalog);
    const node = parser.parseAll();
    return { selectors: parser.selectors, type: node.type, errors: parser.errors };
  } catch (error) {
    return { selectors: parser?.selectors ?? [], type: "scalar", errors: [...(parser?.errors ?? []), `does not parse: ${(error as Error).message}`] };
  }
}

/** Grafana's interval variables stand for a duration; replaced so the expression parses as PromQL. */
export function expandGrafanaVariables(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}/g, "5m");
}
