/**
 * Just enough multipart/form-data for `POST /v1/files`: text fields and one file part, from a body
 * fastify already read whole (bounded by the route's body limit). A streaming parser
 * (@fastify/multipart) would buy nothing here: the file is stored in one row anyway.
 */
import { AppError } from "../../../errors.js";

export interface FormData {
  fields: Record<string, string>;
  file: { filename: string; content: Buffer } | undefined;
}

export function boundaryOf(contentType: string | undefined): string {
  const match = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? "");
  const boundary = match?.[1] ?? match?.[2];
  if (!boundary || !/^multipart\/form-data/i.test(contentType ?? "")) {
    throw new AppError("invalid_body", "send the file as multipart/form-data with a boundary");
  }
  return boundary;
}

const CRLF2 = Buffer.from("\r\n\r\n");

export function parseMultipart(body: Buffer, boundary: string): FormData {
  const delimiter = Buffer.from(`--${boundary}`);
  const form: FormData = { fields: {}, file: undefined };
  let at = body.indexOf(delimiter);
  if (at < 0) throw new AppError("invalid_body", "the multipart body has no part");
  for (;;) {
    at += delimiter.length;
    // "--" after a delimiter closes the body.
    if (body[at] === 0x2d && body[at + 1] === 0x2d) return form;
    const headersEnd = body.indexOf(CRLF2, at);
    if (headersEnd < 0) throw new AppError("invalid_body", "a multipart part has no end of headers");
    const headers = body.subarray(at, headersEnd).toString("utf8");
    const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), headersEnd + 4);
    if (next < 0) throw new AppError("invalid_body", "the multipart body is not closed");
    const content = body.subarray(headersEnd + 4, next);
    const disposition = /content-disposition:([^\r\n]*)/i.exec(headers)?.[1] ?? "";
    const name = /\bname="([^"]*)"/i.exec(disposition)?.[1];
    const filename = /\bfilename="([^"]*)"/i.exec(disposition)?.[1];
    if (name === "file" && filename !== undefined) {
      if (form.file) throw new AppError("invalid_parameter", "send one file per upload", { details: { field: "file" } });
      form.file = { filename: filename.slice(0, 256) || "upload.jsonl", content: Buffer.from(content) };
    } else if (name !== undefined) {
      form.fields[name] = content.toString("utf8");
    }
    at = next + 2;
  }
}
