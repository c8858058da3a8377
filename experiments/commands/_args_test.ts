import assert from "node:assert/strict";
import { InputError } from "../../runtime/errors.ts";
import { CommandLine, jaxDevice } from "./_args.ts";

const SPEC = "model length=512 lengths=256,512 density json!";
const refuses = (args: string[], message: string, positionals = 0) =>
  assert.throws(
    () => {
      const c = CommandLine.parse(args, "help", SPEC, positionals)!;
      c.int("length", 1);
      c.ints("lengths", 2);
      if (c.string("density") !== undefined) c.density("density");
    },
    (e: unknown) => e instanceof InputError && e.message === message,
  );

Deno.test("CommandLine reads declared options, their defaults and flags", () => {
  const c = CommandLine.parse(["--model", "m", "--lengths", "64,128", "--json"], "help", SPEC)!;
  assert.equal(c.required("model", "DIR"), "m");
  assert.equal(c.int("length", 1), 512);
  assert.deepEqual(c.ints("lengths", 2), [64, 128]);
  assert.equal(c.flag("json"), true);
  assert.equal(c.string("density"), undefined);
  assert.deepEqual(c.positionals, []);
  const d = CommandLine.parse(["--density", "0.25", "a.json"], "help", SPEC, 1)!;
  assert.equal(d.density("density"), 0.25);
  assert.deepEqual(d.positionals, ["a.json"]);
  assert.equal(d.flag("json"), false);
});

Deno.test("CommandLine refuses bad input with the option named", () => {
  refuses(["--length", "0"], "--length: expected a positive integer, got '0'");
  refuses(["--length", "1.5"], "--length: expected a positive integer, got '1.5'");
  refuses(["--length", ""], "--length: expected a positive integer, got ''");
  refuses(
    ["--lengths", "64,,128"],
    "--lengths: expected integers ≥ 2 separated by commas, got '64,,128'",
  );
  refuses(["--density", "1.5"], "--density: expected a number in (0, 1], got '1.5'");
  refuses(["extra"], "unexpected argument 'extra' (see --help)");
  refuses(["a", "b"], "unexpected argument 'b' (see --help)", 1);
  assert.throws(
    () => CommandLine.parse(["--nope"], "help", SPEC),
    (e: unknown) =>
      e instanceof InputError && /^Unknown option '--nope'.* \(see --help\)$/.test(e.message),
  );
  assert.throws(
    () => CommandLine.parse([], "help", SPEC)!.required("model", "DIR", "plan import: "),
    (e: unknown) =>
      e instanceof InputError && e.message === "plan import: --model DIR is required (see --help)",
  );
});

Deno.test("CommandLine prints the help for -h and --help", () => {
  const printed: string[] = [];
  const log = console.log;
  console.log = (s: string) => printed.push(s);
  try {
    assert.equal(CommandLine.parse(["-h"], "the help", SPEC), null);
    assert.equal(CommandLine.parse(["--model", "x", "--help"], "the help", SPEC), null);
  } finally {
    console.log = log;
  }
  assert.deepEqual(printed, ["the help", "the help"]);
});

Deno.test("jaxDevice() takes wasm and webgpu and names any other value", () => {
  assert.equal(jaxDevice("wasm"), "wasm");
  assert.equal(jaxDevice("webgpu"), "webgpu");
  assert.throws(() => jaxDevice("cuda"), /--device: expected wasm or webgpu, got 'cuda'/);
});
