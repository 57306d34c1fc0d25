/**
 * Colours of the `iommu` command's text output.
 *
 * The command decides once per run whether to colour: `--color` and
 * `--no-color` win; then `NO_COLOR` (any value, https://no-color.org) turns
 * colour off and `FORCE_COLOR` (not `0`) turns it on; otherwise colour is on
 * only when standard output is a terminal. Output captured by a caller of
 * `run()` is never coloured unless asked. JSON output is never coloured.
 *
 * Not a Linux concept; colours come from picocolors.
 */
import picocolors from 'picocolors';

/** The colour functions the text formatters use (no-ops when colour is off). */
export let pc: ReturnType<typeof picocolors.createColors> = picocolors.createColors(false);

/** Switch the text formatters' colours on or off for the rest of the run. */
export function setColor(enabled: boolean): void {
  pc = picocolors.createColors(enabled);
}

/**
 * Whether to colour output written to a stream, from the command-line choice
 * (`true`/`false`, or `undefined` when none was given), the environment and
 * whether the stream is a terminal.
 */
export function wantColor(choice: boolean | undefined, env: NodeJS.ProcessEnv, isTty: boolean): boolean {
  if (choice !== undefined) return choice;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined) return env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false';
  return isTty;
}
