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
  /** @param message what is wrong, naming the file/field/value and what was expected */
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}
