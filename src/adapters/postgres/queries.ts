/** Loads queries.sql once and hands out statements by name. */
import { readFileSync } from "node:fs";

const source = readFileSync(new URL("./queries.sql", import.meta.url), "utf8");

function parse(text: string): Map<string, string> {
  const statements = new Map<string, string>();
  let name: string | undefined;
  let lines: string[] = [];
  const flush = () => {
    if (name) statements.set(name, lines.join("\n").trim().replace(/;$/, ""));
  };
  for (const line of text.split("\n")) {
    const match = /^--\s*name:\s*(\w+)/.exec(line);
    if (match) {
      flush();
      name = match[1];
      lines = [];
    } else if (name && !line.startsWith("--")) lines.push(line);
  }
  flush();
  return statements;
}

const statements = parse(source);

/** The statement called `name` in queries.sql, named so PostgreSQL prepares it once per connection. */
export function sql(name: string): { name: string; text: string } {
  const text = statements.get(name);
  if (!text) throw new Error(`no SQL statement named ${name} in queries.sql`);
  return { name: `mli_${name}`, text };
}

/** The same over another file of named statements beside this one (an adapter's own .sql). */
export function statementsOf(file: string): (name: string) => { name: string; text: string } {
  const own = parse(readFileSync(new URL(`./${file}`, import.meta.url), "utf8"));
  return (name) => {
    const text = own.get(name);
    if (!text) throw new Error(`no SQL statement named ${name} in ${file}`);
    return { name: `mli_${name}`, text };
  };
}
