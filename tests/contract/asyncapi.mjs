// Validates an AsyncAPI document with the AsyncAPI project's own parser.
// Usage: node asyncapi.mjs <asyncapi.json>; exits 1 with the parser's diagnostics on errors.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const file = process.argv[2];
const text = await readFile(file, "utf8");
const { document, diagnostics } = await new Parser().parse(text);
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  const level = ["error", "warning", "info", "hint"][d.severity] ?? d.severity;
  console.log(`${level}: ${d.message} at ${JSON.stringify(d.path)}`);
}
if (!document || errors.length > 0) {
  console.error(`${file}: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(`${file}: valid AsyncAPI ${document.version()}, ${document.messages().length} message(s)`);
