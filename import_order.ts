/**
 * The order of the floors, checked: imports run one way, experiments/ → solver/ → data/ →
 * runtime/, with mod.ts above all, and no modules import each other in a circle. The README's
 * Layout section says what each floor holds; `import_order_test.ts` runs the check on the
 * repository (and on planted faults, to show it can fail).
 *
 * Scope: every `.ts` module outside node_modules, results, hidden folders and `testdata/`; test
 * files (`*_test.ts`) may import across floors (a runtime test may use data's LongEval prompts).
 * Every relative `import … from`, `export … from`, `import(…)` and `import "…"` counts, those in documentation
 * examples too (`deno test --doc` runs them).
 *
 * @module
 */

/** The floors from the ground up; a module may import from its own floor and the ones below. */
export const FLOORS = ["runtime", "data", "solver", "experiments"] as const;

/** An import that goes up a floor. */
export interface UpwardImport {
  /** the importing module, relative to the root */
  from: string;
  /** the imported module */
  to: string;
}

/** What {@link checkImportOrder} found. */
export interface ImportOrder {
  /** imports from a lower floor to a higher one */
  upward: UpwardImport[];
  /** groups of modules that import each other in a circle (strongly connected, 2 or more) */
  cycles: string[][];
}

/**
 * The floor of a module: its index in {@link FLOORS}, above them all for `mod.ts`, or null for a
 * module outside the floors.
 *
 * @example
 * ```ts
 * import { floorOf } from "./import_order.ts";
 * console.log(floorOf("solver/milp.ts"), floorOf("mod.ts"), floorOf("tools/x.ts")); // 2 4 null
 * ```
 */
export function floorOf(path: string): number | null {
  if (path === "mod.ts") return FLOORS.length;
  const i = (FLOORS as readonly string[]).indexOf(path.split("/")[0]!);
  return i < 0 ? null : i;
}

const IMPORT = new RegExp(
  [
    /(?:import|export)[^"']*?from\s+["'](\.{1,2}\/[^"']+)["']/.source, // import … from, export … from
    /import\s*\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/.source, // import(…)
    /import\s+["'](\.{1,2}\/[^"']+)["']/.source, // import "…" (for its side effects)
  ].join("|"),
  "g",
);

/**
 * The relative module specifiers a source imports or re-exports (static or dynamic).
 *
 * @example
 * ```ts
 * import { importsOf } from "./import_order.ts";
 * console.log(importsOf('import { a } from "./a.ts";\nexport * from "../b.ts";\nimport "yaml";'));
 * // ["./a.ts", "../b.ts"]
 * ```
 */
export function importsOf(source: string): string[] {
  return [...source.matchAll(IMPORT)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

/** `a/b/../c.ts` → `a/c.ts`; null when it climbs out of the root. */
function normalize(path: string): string | null {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length === 0) return null;
      out.pop();
    } else out.push(part);
  }
  return out.join("/");
}

/**
 * The import graph of a set of modules: each module's imports among the set, resolved against
 * its folder.
 *
 * @param sources module path (relative to the root, `/`-separated) → its source text
 * @returns module → the modules of the set it imports
 */
export function importGraph(sources: Record<string, string>): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const [path, source] of Object.entries(sources)) {
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
    const targets = importsOf(source)
      .map((spec) => normalize(`${dir}/${spec}`))
      .filter((t): t is string => t !== null && t in sources && t !== path);
    graph.set(path, [...new Set(targets)]);
  }
  return graph;
}

/**
 * Checks an import graph: imports that go up a floor, and circles (Tarjan's strongly connected
 * components of two or more modules).
 *
 * @param graph module → the modules it imports (see {@link importGraph})
 * @returns the upward imports and the circles, each sorted
 */
export function checkImportOrder(graph: Map<string, string[]>): ImportOrder {
  const upward: UpwardImport[] = [];
  for (const [from, tos] of graph) {
    const f = floorOf(from);
    for (const to of tos) {
      const t = floorOf(to);
      if (f !== null && t !== null && t > f) upward.push({ from, to });
    }
  }
  upward.sort((a, b) => `${a.from} ${a.to}`.localeCompare(`${b.from} ${b.to}`));
  return { upward, cycles: stronglyConnected(graph).filter((c) => c.length > 1) };
}

/** Tarjan's algorithm, iterative (no recursion limit on deep chains). */
function stronglyConnected(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], onStack = new Set<string>(), out: string[][] = [];
  let next = 0;
  for (const root of [...graph.keys()].sort()) {
    if (index.has(root)) continue;
    const work: [string, number][] = [[root, 0]];
    index.set(root, next);
    low.set(root, next++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const top = work.at(-1)!;
      const [v, i] = top;
      const edges = graph.get(v) ?? [];
      if (i < edges.length) {
        top[1]++;
        const w = edges[i]!;
        if (!index.has(w)) {
          index.set(w, next);
          low.set(w, next++);
          stack.push(w);
          onStack.add(w);
          work.push([w, 0]);
        } else if (onStack.has(w)) {
          low.set(v, Math.min(low.get(v)!, index.get(w)!));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const u = work.at(-1)![0];
        low.set(u, Math.min(low.get(u)!, low.get(v)!));
      }
      if (low.get(v) === index.get(v)) {
        const comp: string[] = [];
        for (;;) {
          const w = stack.pop()!;
          onStack.delete(w);
          comp.push(w);
          if (w === v) break;
        }
        out.push(comp.sort());
      }
    }
  }
  return out;
}

/**
 * The modules of a repository whose order is checked: every `.ts` file below `root`, leaving out
 * node_modules, results, hidden folders, `testdata/` and test files.
 *
 * @param root the repository's folder
 * @returns module path (relative, `/`-separated) → source
 */
export async function readModules(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(`${root}/${dir}`)) {
      const path = dir ? `${dir}/${e.name}` : e.name;
      if (e.isDirectory) {
        if (["node_modules", "results", "testdata"].includes(e.name) || e.name.startsWith(".")) {
          continue;
        }
        await walk(path);
      } else if (e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) {
        out[path] = await Deno.readTextFile(`${root}/${path}`);
      }
    }
  };
  await walk("");
  return out;
}
