/**
 * The step model (after k0sctl's phases): every piece of work on a host is a small named
 * unit that can say whether it needs to run. Re-running a plan therefore redoes nothing
 * that already holds, and `--dry-run` is just "ask every step, run none".
 */
export interface Step<C> {
  /** Stable id ("engine-install"); used in --dry-run output and tests. */
  id: string;
  /** What the user sees on the progress line. */
  title: string;
  /** False when what the step would do already holds. Must not change anything. */
  needsRun(context: C): Promise<boolean>;
  run(context: C, report: (message: string) => void): Promise<void>;
}
