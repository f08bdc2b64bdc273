/** The batch input file's checks, pure: each refusal names its line and field; a good file passes whole. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { validateBatchFile, MAX_REPORTED_ERRORS } from "./lines.js";
import { boundaryOf, parseMultipart } from "./multipart.js";

const limits = { maxBytes: 10_000, maxLines: 5, body: { maxLength: 100, maxPromptChars: 200, models: ["default", "m"], defaultModel: "m" } };
const chat = (id: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "default", messages: [{ role: "user", content: "hi" }], ...extra } });
const file = (...lines: string[]) => Buffer.from(lines.join("\n") + "\n");
const check = (content: Buffer, endpoint: "/v1/chat/completions" | "/v1/completions" | "/v1/responses" = "/v1/chat/completions") =>
  validateBatchFile(content, endpoint, limits);
const errorsOf = (content: Buffer, endpoint?: "/v1/chat/completions" | "/v1/completions" | "/v1/responses") => {
  const result = check(content, endpoint);
  assert.equal(result.ok, false);
  return result.ok ? [] : result.errors;
};

describe("batch input validation", () => {
  it("a good file gives its lines in order, with their numbers (blank lines keep the count)", () => {
    const result = check(file(chat("a"), "", chat("b")));
    assert.ok(result.ok);
    assert.deepEqual(result.lines.map((l) => [l.line, l.customId]), [[1, "a"], [3, "b"]]);
  });

  it("malformed JSON names the line", () => {
    assert.deepEqual(errorsOf(file(chat("a"), "{not json")), [{ code: "invalid_json_line", line: 2, message: "line 2 is not valid JSON", param: null }]);
    assert.equal(errorsOf(file("[1,2]"))[0]!.code, "invalid_json_line");
  });

  it("a duplicate custom_id names the later line", () => {
    const [error] = errorsOf(file(chat("a"), chat("b"), chat("a")));
    assert.deepEqual([error!.code, error!.line, error!.param], ["duplicate_custom_id", 3, "custom_id"]);
  });

  it("a wrong url or method, or a missing custom_id, names the line and field", () => {
    const wrongUrl = JSON.stringify({ custom_id: "x", method: "POST", url: "/v1/completions", body: { model: "m", prompt: "p" } });
    const wrongMethod = JSON.stringify({ custom_id: "y", method: "GET", url: "/v1/chat/completions", body: {} });
    const noId = JSON.stringify({ method: "POST", url: "/v1/chat/completions", body: {} });
    const errors = errorsOf(file(wrongUrl, wrongMethod, noId));
    assert.deepEqual(errors.map((e) => [e.code, e.line, e.param]), [["invalid_url", 1, "url"], ["invalid_method", 2, "method"], ["invalid_custom_id", 3, "custom_id"]]);
  });

  it("an invalid body is refused by the route's own parser, the field under body.", () => {
    const errors = errorsOf(file(chat("a", { max_tokens: 10_000 }), chat("b", { tools: [] }), chat("c", { stream: true }), chat("d", { model: "nope" })));
    assert.deepEqual(errors.map((e) => [e.code, e.line, e.param]), [
      ["invalid_parameter", 1, "body.max_tokens"],
      ["unknown_field", 2, "body.tools"],
      ["invalid_parameter", 3, "body.stream"],
      ["model_not_found", 4, "body.model"],
    ]);
    const responses = JSON.stringify({ custom_id: "r", method: "POST", url: "/v1/responses", body: { model: "default", input: "x", tools: [] } });
    assert.equal(errorsOf(file(responses), "/v1/responses")[0]!.param, "body.tools");
    const completion = JSON.stringify({ custom_id: "c", method: "POST", url: "/v1/completions", body: { model: "default" } });
    assert.deepEqual(errorsOf(file(completion), "/v1/completions").map((e) => [e.code, e.param]), [["missing_prompt", "body.prompt"]]);
  });

  it("over the line or size limit, or empty, the batch fails", () => {
    assert.deepEqual(errorsOf(file(...["a", "b", "c", "d", "e", "f"].map((id) => chat(id)))).map((e) => [e.code, e.line]), [["too_many_lines", 6]]);
    assert.equal(errorsOf(Buffer.alloc(10_001, 0x20))[0]!.code, "file_too_large");
    assert.equal(errorsOf(Buffer.from("\n\n"))[0]!.code, "empty_file");
  });

  it("reports at most MAX_REPORTED_ERRORS lines", () => {
    const many = validateBatchFile(Buffer.from("x\n".repeat(500)), "/v1/chat/completions", { ...limits, maxLines: 1000 });
    assert.ok(!many.ok && many.errors.length === MAX_REPORTED_ERRORS);
  });
});

describe("multipart for one file", () => {
  it("reads the purpose field and the file's bytes exactly (CRLF inside kept)", () => {
    const content = Buffer.from('{"a":1}\r\n{"b":2}\n');
    const b = "----x123";
    const body = Buffer.concat([
      Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n`),
      Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n`),
      content,
      Buffer.from(`\r\n--${b}--\r\n`),
    ]);
    const form = parseMultipart(body, boundaryOf(`multipart/form-data; boundary=${b}`));
    assert.equal(form.fields.purpose, "batch");
    assert.equal(form.file?.filename, "in.jsonl");
    assert.ok(form.file?.content.equals(content));
  });

  it("refuses what is not multipart or not closed", () => {
    assert.throws(() => boundaryOf("application/json"), /multipart/);
    assert.throws(() => parseMultipart(Buffer.from("--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nvalue"), "b"), /not closed/);
  });
});
