/**
 * What the commands share in reading their command line: the options declared in one line
 * (`model length=512 json!`: a string option, one with a default, a boolean), `-h`/`--help`
 * printing the command's help, and readers of option values whose errors name the option
 * (an `InputError`, exit code 2).
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { InputError } from "../../runtime/errors.ts";
import type { JaxDevice } from "../../runtime/autodiff/jax_model.ts";

/** A parsed command line with typed readers of its options. */
export class CommandLine {
  private constructor(
    readonly values: Record<string, string | boolean | (string | boolean)[] | undefined>,
    /** The arguments that are not options. */
    readonly positionals: string[],
  ) {}

  /**
   * Parses a command line against its options; prints `help` and returns null for `--help`.
   *
   * @param args the arguments after the script name
   * @param help the command's help text
   * @param spec the options, space-separated: `name` (a string), `name=default` (a string with a
   *   default), `name!` (a boolean, false unless given)
   * @param positionals how many arguments that are not options the command takes at most
   *   (`Infinity`: the command counts them itself)
   * @returns the command line, or null after printing the help
   * @throws {InputError} for an unknown option, a missing value or too many arguments
   *
   * @example
   * ```ts
   * import { CommandLine } from "./_args.ts";
   * const c = CommandLine.parse(["--length", "64", "--json"], "help", "model length=512 json!")!;
   * console.log(c.int("length", 1), c.flag("json"), c.string("model")); // 64 true undefined
   * ```
   */
  static parse(args: string[], help: string, spec: string, positionals = 0): CommandLine | null {
    const options: ParseArgsOptionsConfig = {
      help: { type: "boolean", short: "h", default: false },
    };
    for (const token of spec.split(/\s+/).filter((t) => t !== "")) {
      const [name, fallback] = token.split("=", 2) as [string, string | undefined];
      options[name.replace(/!$/, "")] = name.endsWith("!")
        ? { type: "boolean", default: false }
        : { type: "string", ...(fallback === undefined ? {} : { default: fallback }) };
    }
    let parsed;
    try {
      parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
    } catch (e) {
      if (e instanceof Error && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS")) {
        throw new InputError(`${e.message} (see --help)`);
      }
      throw e;
    }
    if (parsed.values.help) {
      console.log(help);
      return null;
    }
    if (parsed.positionals.length > positionals) {
      throw new InputError(`unexpected argument '${parsed.positionals.at(-1)}' (see --help)`);
    }
    return new CommandLine(parsed.values, parsed.positionals);
  }

  /** A string option's value (its default when not given), or undefined. */
  string(name: string): string | undefined {
    const v = this.values[name];
    if (v !== undefined && typeof v !== "string") {
      throw new Error(`--${name} is not a string option`);
    }
    return v;
  }

  /**
   * A string option that must be there.
   * @param what how the help names its value, e.g. `DIR`
   * @param prefix put before the message, e.g. `plan import: `
   * @throws {InputError} `--<name> <what> is required (see --help)`
   */
  required(name: string, what: string, prefix = ""): string {
    const v = this.string(name);
    if (v === undefined || v === "") {
      throw new InputError(`${prefix}--${name} ${what} is required (see --help)`);
    }
    return v;
  }

  /** Whether a boolean option was given. */
  flag(name: string): boolean {
    return this.values[name] === true;
  }

  /**
   * An integer option of at least `min` (the option must have a value or a default).
   * @throws {InputError} `--<name>: expected a positive integer, got '<value>'` (or a
   *   non-negative integer, or an integer ≥ min)
   */
  int(name: string, min: number): number {
    const v = this.string(name) ?? "";
    const n = v.trim() === "" ? NaN : Number(v);
    if (!Number.isInteger(n) || n < min) {
      const what = min === 1
        ? "a positive integer"
        : min === 0
        ? "a non-negative integer"
        : `an integer ≥ ${min}`;
      throw new InputError(`--${name}: expected ${what}, got '${v}'`);
    }
    return n;
  }

  /**
   * A comma-separated list of integers of at least `min`.
   * @throws {InputError} `--<name>: expected integers ≥ <min> separated by commas, got '<value>'`
   */
  ints(name: string, min: number): number[] {
    const v = this.string(name) ?? "";
    const xs = v.split(",").map((s) => (s.trim() === "" ? NaN : Number(s)));
    if (xs.some((n) => !Number.isInteger(n) || n < min)) {
      throw new InputError(
        `--${name}: expected integers ≥ ${min} separated by commas, got '${v}'`,
      );
    }
    return xs;
  }

  /**
   * A KV-cache density in (0, 1].
   * @throws {InputError} `--<name>: expected a number in (0, 1], got '<value>'`
   */
  density(name: string): number {
    const v = this.string(name) ?? "";
    const d = v.trim() === "" ? NaN : Number(v);
    if (!(d > 0 && d <= 1)) {
      throw new InputError(`--${name}: expected a number in (0, 1], got '${v}'`);
    }
    return d;
  }
}

/**
 * A `--device` value checked against jax-js's devices (the trainer's and `bench train`'s).
 * @throws {InputError} `--device: expected wasm or webgpu, got '<value>'`
 */
export function jaxDevice(v: string): JaxDevice {
  if (v !== "wasm" && v !== "webgpu") {
    throw new InputError(`--device: expected wasm or webgpu, got '${v}'`);
  }
  return v;
}
