/**
 * The error table is complete and honest: every code literal raised anywhere in src/ is in the table,
 * every code in the table is raised somewhere and documented, and the README's table is the one
 * generated from it. The scan reads the TypeScript syntax tree (not regular expressions), so a code
 * split over lines or chosen by a ternary is still found.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { ERRORS, ERROR_CODES, isErrorCode, AppError, openAiErrorBody } from "./errors.js";

const SRC = new URL(".", import.meta.url).pathname;
const README = new URL("../README.md", import.meta.url).pathname;
/** Constructors whose first argument is an error code. */
const CODE_CONSTRUCTORS = new Set(["AppError", "MlCallError"]);

interface Found {
  code: string;
  where: string;
}

/**
 * The client and its CLI (src/client, src/cli) run on the caller's side: their own codes
 * (CLIENT_ERROR_CODES, "usage") never come from the platform, so they are not the table's.
 */
const CALLER_SIDE = new Set(["client", "cli"]);

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (dir === SRC && CALLER_SIDE.has(name)) continue;
    if (statSync(full).isDirectory()) sourceFiles(full, out);
    else if (name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.endsWith(".d.ts")) out.push(full);
  }
  return out;
}

/**
 * The string literals an expression can evaluate to (through parentheses, ternaries and `??`/`||`);
 * a template with substitutions is reported as dynamic, since no table could hold its codes.
 */
function literalsOf(node: ts.Expression, add: (code: string, at: ts.Node) => void): void {
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) add(node.text, node);
  else if (ts.isTemplateExpression(node)) add(`<dynamic ${node.getText()}>`, node);
  else if (ts.isParenthesizedExpression(node) || ts.isSatisfiesExpression(node) || ts.isAsExpression(node)) literalsOf(node.expression, add);
  else if (ts.isConditionalExpression(node)) {
    literalsOf(node.whenTrue, add);
    literalsOf(node.whenFalse, add);
  } else if (ts.isBinaryExpression(node) && [ts.SyntaxKind.QuestionQuestionToken, ts.SyntaxKind.BarBarToken].includes(node.operatorToken.kind)) {
    literalsOf(node.left, add);
    literalsOf(node.right, add);
  }
}

const isErrorCodeType = (type: ts.TypeNode | undefined) => type !== undefined && type.getText() === "ErrorCode";

/** `ctx.addIssue({ code: "custom", … })`: zod's issue kinds, not ours. */
function isZodIssue(property: ts.PropertyAssignment): boolean {
  const call = property.parent.parent;
  return ts.isCallExpression(call) && ts.isPropertyAccessExpression(call.expression) && call.expression.name.text === "addIssue";
}

/** Every place in the source that names an error code with a literal. */
export function scanRaisedCodes(files: string[]): Found[] {
  const found: Found[] = [];
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const add = (code: string, at: ts.Node) => {
      if (code === "") return; // an empty metric label, not a code
      const line = source.getLineAndCharacterOfPosition(at.getStart()).line + 1;
      found.push({ code, where: `${file.slice(SRC.length)}:${line}` });
    };
    const visit = (node: ts.Node): void => {
      // new AppError("code", …), new MlCallError("code", …)
      if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && CODE_CONSTRUCTORS.has(node.expression.text)) {
        const first = node.arguments?.[0];
        if (first) literalsOf(first, add);
      }
      // { code: "…" } in error objects of events, outcomes and answers
      if (ts.isPropertyAssignment(node) && (ts.isIdentifier(node.name) || ts.isStringLiteral(node.name)) && node.name.text === "code" && !isZodIssue(node)) {
        literalsOf(node.initializer, add);
      }
      // const code: ErrorCode = …, and "…" satisfies ErrorCode / as ErrorCode
      if ((ts.isVariableDeclaration(node) || ts.isParameter(node) || ts.isPropertyDeclaration(node)) && isErrorCodeType(node.type) && node.initializer) {
        literalsOf(node.initializer, add);
      }
      if ((ts.isSatisfiesExpression(node) || ts.isAsExpression(node)) && isErrorCodeType(node.type)) literalsOf(node.expression, add);
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

/** The README's error table, generated from ERRORS. */
export function renderErrorTable(): string {
  const rows = ERROR_CODES.map((code) => {
    const spec = ERRORS[code];
    return `| \`${code}\` | ${spec.status} | ${spec.retryable ? "yes" : "no"} | ${spec.doc} |`;
  });
  return ["| code | status | retry later | meaning |", "|---|---|---|---|", ...rows].join("\n");
}

const START = "<!-- error-codes:start (generated from src/errors.ts; src/errors.test.ts checks it) -->";
const END = "<!-- error-codes:end -->";

const raised = scanRaisedCodes(sourceFiles(SRC));

test("the scan finds codes in every form they are raised in", () => {
  const codes = new Set(raised.map((f) => f.code));
  // One of each form: a plain AppError, a code chosen by a ternary inside MlCallError, an error
  // object literal, a typed variable, and a `satisfies` SQL parameter.
  for (const code of ["quota_exceeded", "ml_timeout", "ml_unreachable", "missing_usage", "attempts_exhausted", "timeout"]) {
    assert.ok(codes.has(code), `the scan lost ${code}`);
  }
  assert.ok(raised.length > 50, `only ${raised.length} raise sites found`);
});

test("every code raised in src/ is in the error table", () => {
  const unknown = raised.filter((f) => !isErrorCode(f.code));
  assert.deepEqual(unknown, [], `codes raised but not in src/errors.ts: ${unknown.map((f) => `${f.code} (${f.where})`).join(", ")}`);
});

test("every code in the error table is raised somewhere and documented", () => {
  const codes = new Set(raised.map((f) => f.code));
  const never = ERROR_CODES.filter((code) => !codes.has(code));
  assert.deepEqual(never, [], `codes in the table that nothing raises: ${never.join(", ")}`);
  for (const code of ERROR_CODES) {
    const { doc, status } = ERRORS[code];
    assert.ok(doc.length > 10 && !doc.includes("\n") && !doc.includes("|"), `${code}: one readable line of documentation`);
    assert.ok(Number.isInteger(status) && status >= 400 && status < 600, `${code}: an HTTP error status`);
  }
});

test("the README's error table is the one generated from src/errors.ts", () => {
  const readme = readFileSync(README, "utf8");
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  assert.ok(start >= 0 && end > start, `README.md needs the markers ${START} … ${END}`);
  const block = readme.slice(start + START.length, end).trim();
  assert.equal(block, renderErrorTable(), `README.md's error table is stale; put this between the markers:\n${renderErrorTable()}`);
});

test("AppError takes its status and retryability from the table; OpenAI's shape keeps the code", () => {
  const error = new AppError("invalid_parameter", "top_p: too big", { details: { field: "top_p" } });
  assert.equal(error.status, 400);
  assert.equal(error.retryable, false);
  assert.equal(new AppError("queue_full", "busy").retryable, true);
  assert.deepEqual(openAiErrorBody(error), {
    error: { message: "top_p: too big", type: "invalid_request_error", param: "top_p", code: "invalid_parameter" },
  });
  assert.equal(openAiErrorBody(new AppError("unauthorized", "no key")).error.type, "authentication_error");
  assert.equal(openAiErrorBody(new AppError("rate_limited", "slow down")).error.type, "rate_limit_error");
  assert.equal(openAiErrorBody(new AppError("queue_full", "busy")).error.type, "server_error");
  assert.equal(openAiErrorBody(new AppError("queue_full", "busy")).error.param, null);
  assert.equal(isErrorCode("toString"), false);
  assert.equal(isErrorCode("timeout"), true);
});

test("the client's own codes are not the platform's (a caller can tell them apart)", async () => {
  const { CLIENT_ERROR_CODES } = await import("./client/errors.js");
  for (const code of [...CLIENT_ERROR_CODES, "usage"]) assert.equal(isErrorCode(code), false, `${code} is also a platform code`);
});
