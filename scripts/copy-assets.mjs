#!/usr/bin/env node
// tsc compiles .ts only; the SQL and Lua files the adapters read at run time are copied beside them.
import { cpSync, readdirSync, statSync, mkdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";

const ASSET = /\.(sql|lua)$/;
let copied = 0;
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) walk(full);
    else if (ASSET.test(name)) {
      const target = join("dist", relative("src", full));
      mkdirSync(dirname(target), { recursive: true });
      cpSync(full, target);
      copied++;
    }
  }
}
walk("src");
console.log(`copied ${copied} SQL/Lua files into dist/`);
