/**
 * `deno task bench <name> [--json]`: speed benchmarks that print ratios measured side by side in
 * one run. Benchmarks: `cpu` (prefill/decode of the CPU backend vs its engine's matmul).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { InputError, runCli } from "../../runtime/errors.ts";
import { benchCpu } from "./cpu.ts";
import { benchSolver } from "../../solver/bench.ts";

const HELP = `moa benchmarks

Usage: deno task bench <name> [--json] [--model DIR] [--contexts 1024,4096]

  solver one MILP of the reference size (32 layers × 32 kv heads × 48 rules, 4 density
         constraints, 2 distinct rules per layer) to a 0.1% gap; target ≤ 60 s
  cpu    prefill and decode tokens/s at each context on the CPU backend, with the prefill's
         effective GFLOP/s beside the same engine's 1024³ matmul GFLOP/s (target ratio ≥ 0.4)

Options:
  --json             print JSON rows instead of a table
  --model DIR        model folder (default: data/models/moa-tiny)
  --contexts LIST    comma-separated context lengths (default 1024,4096)
`;

/** Formats rows of objects as an aligned text table. */
export function textTable(rows: Record<string, string | number>[]): string {
  if (rows.length === 0) return "(no rows)";
  const cols = Object.keys(rows[0]!);
  const cell = (v: string | number) =>
    typeof v !== "number"
      ? v
      : Number.isInteger(v) || Math.abs(v) >= 100
      ? v.toFixed(0)
      : v.toPrecision(3);
  const body = rows.map((r) => cols.map((c) => String(cell(r[c]!))));
  const w = cols.map((c, i) => Math.max(c.length, ...body.map((b) => b[i]!.length)));
  const line = (cs: string[]) => cs.map((c, i) => c.padStart(w[i]!)).join("  ");
  return [line(cols), w.map((x) => "─".repeat(x)).join("  "), ...body.map(line)].join("\n");
}

async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: "boolean", default: false },
      model: { type: "string" },
      contexts: { type: "string", default: "1024,4096" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help || positionals.length === 0) {
    console.log(HELP);
    return values.help ? 0 : 2;
  }
  const contexts = values.contexts.split(",").map(Number);
  if (contexts.some((c) => !Number.isInteger(c) || c < 1)) {
    throw new InputError(
      `--contexts: expected positive integers separated by commas, got '${values.contexts}'`,
    );
  }
  const name = positionals[0];
  if (name === "solver") {
    const r = await benchSolver({});
    console.log(
      values.json ? JSON.stringify(r) : textTable([{
        problem: "32×32 kv heads × 48 rules, 4 density rows",
        seconds: r.seconds,
        gap: r.gap,
        objective: r.objective,
      }]),
    );
    return 0;
  }
  if (name !== "cpu") throw new InputError(`unknown benchmark '${name}'; available: cpu, solver`);
  const rows = await benchCpu({
    modelDir: values.model ?? new URL("../../data/models/moa-tiny", import.meta.url).pathname,
    contexts,
  });
  if (values.json) console.log(JSON.stringify(rows));
  else console.log(textTable(rows as unknown as Record<string, string | number>[]));
  return 0;
}

if (import.meta.main) await runCli(main);
