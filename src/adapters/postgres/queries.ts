/** Loads queries.sql once and hands out statements by name. */
import { readFileSync } from "node:fs";

const source = readFileSync(new URL("./queries.sql", import.meta.url), "utf8");

interface Parsed {
  text: string;
  /** `-- bound: bulk` under the name: runs under PG_BULK_QUERY_TIMEOUT_MS instead of PG_QUERY_TIMEOUT_MS. */
  bulk: boolean;
}

function parse(text: string): Map<string, Parsed> {
  const statements = new Map<string, Parsed>();
  let name: string | undefined;
  let lines: string[] = [];
  let bulk = false;
  const flush = () => {
    if (name) statements.set(name, { text: lines.join("\n").trim().replace(/;$/, ""), bulk });
  };
  for (const line of text.split("\n")) {
    const match = /^--\s*name:\s*(\w+)/.exec(line);
    if (match) {
      flush();
      name = match[1];
      lines = [];
      bulk = false;
    } else if (name && /^--\s*bound:\s*bulk\b/.test(line)) bulk = true;
    else if (name && !line.startsWith("--")) lines.push(line);
  }
  flush();
  return statements;
}

const statements = parse(source);

/** The statement called `name` in queries.sql, named so PostgreSQL prepares it once per connection. */
export function sql(name: string): { name: string; text: string; bulk?: boolean } {
  const statement = statements.get(name);
  if (!statement) throw new Error(`no SQL statement named ${name} in queries.sql`);
  return { name: `mli_${name}`, text: statement.text, ...(statement.bulk ? { bulk: true } : {}) };
}

/** The same over another file of named statements beside this one (an adapter's own .sql). */
export function statementsOf(file: string): (name: string) => { name: string; text: string; bulk?: boolean } {
  const own = parse(readFileSync(new URL(`./${file}`, import.meta.url), "utf8"));
  return (name) => {
    const statement = own.get(name);
    if (!statement) throw new Error(`no SQL statement named ${name} in ${file}`);
    return { name: `mli_${name}`, text: statement.text, ...(statement.bulk ? { bulk: true } : {}) };
  };
}
