/**
 * The one error class that command-line entry points map to exit code 2: the user gave the
 * program something it cannot use (a malformed file, a bad field, a missing folder).
 *
 * @module
 */

/**
 * Bad user input. The message names the file, field or value and what was expected, e.g.
 * `experiments/x.yaml:4:12: densities[1]: expected a number in (0, 1], got 1.5`.
 */
export class InputError extends Error {
  /**
   * An error for bad input.
   * @param message what is wrong, naming the file/field/value and what was expected
   */
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}

/**
 * Prints an error for a command-line user and returns the exit code: 2 for bad input (an
 * `InputError` or an unknown/malformed option), 1 for anything else (with its stack).
 */
export function reportError(e: unknown): number {
  if (
    e instanceof InputError ||
    (e instanceof Error && e.name === "TypeError" && "code" in e &&
      String(e.code).startsWith("ERR_PARSE_ARGS"))
  ) {
    console.error(`error: ${e.message}`);
    return 2;
  }
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  return 1;
}

/**
 * Runs a command's `main(args)` and exits with its code, or with `reportError`'s code when it
 * throws. Use as `if (import.meta.main) await runCli(main);`.
 */
export async function runCli(main: (args: string[]) => Promise<number>): Promise<never> {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (e) {
    code = reportError(e);
  }
  Deno.exit(code);
}
