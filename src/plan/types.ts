/**
 * The plan runner's model (after k0sctl's phases): a plan is an ordered list of named
 * phases; each phase has a scope (which hosts, how many at once) and can prepare (choose its
 * hosts from gathered facts), say whether it needs to run on a host, run, describe itself
 * for --dry-run, and clean up when a later phase fails. Re-running a plan therefore redoes
 * nothing that holds. The runner emits events; renderers (listr2 lines, plain lines, JSON
 * lines) live in src/ui/ and the runner imports none of them.
 */

/** How a phase spreads over its hosts. */
export type PhaseScope =
  /** Every host at once, at most `concurrency` together (default: all). */
  | { kind: 'parallel'; concurrency?: number }
  /** One host at a time, in order (manager joins). */
  | { kind: 'serial' }
  /** Rolling work: `size` hosts at a time, the next batch only when this one succeeded. */
  | { kind: 'batches'; size: number }
  /** Once for the whole cluster (host is undefined in the callbacks). */
  | { kind: 'cluster' };

export interface PhaseRun {
  /** The host this run is for; undefined for a cluster-scoped phase. */
  host: string | undefined;
  /** A transient progress line ("uploading 40%"). */
  report(message: string): void;
  /** Aborted on Ctrl-C/SIGTERM. */
  signal: AbortSignal;
  /** True under --dry-run (only phases with `pipeline: true` are run then; they must change nothing outside step()). */
  dryRun: boolean;
  /**
   * Runs one named sub-step of this host's pipeline (its own progress line and result):
   * asks needsRun, runs unless --dry-run. Lets one host go through its steps without
   * waiting for the others (create, provision).
   */
  step(sub: SubStep): Promise<StepOutcome>;
}

/** One step inside a pipeline phase (the provision steps of one host). */
export interface SubStep {
  id: string;
  title: string;
  needsRun?(): Promise<boolean>;
  run(report: (message: string) => void): Promise<void>;
}

export interface Phase<C> {
  /** Stable id ("engine-install"); in --dry-run output, --json events and tests. */
  id: string;
  /** What the user sees ("install the engine"). */
  title: string;
  scope: PhaseScope;
  /** Chooses this phase's hosts from the plan's hosts and the facts gathered so far (default: all). */
  prepare?(context: C, hosts: readonly string[]): Promise<string[]> | string[];
  /** False when what the phase would do on this host already holds. Must change nothing. */
  needsRun?(context: C, run: PhaseRun): Promise<boolean>;
  run(context: C, run: PhaseRun): Promise<void>;
  /** The --dry-run line for a host (default: the title). */
  describe?(context: C, host: string | undefined): string;
  /**
   * A per-host pipeline: run() drives its own sub-steps through PhaseRun.step(), and is
   * called under --dry-run too (where step() only asks needsRun).
   */
  pipeline?: boolean;
  /** Undoes this phase's work on a host when it or a later phase fails or is interrupted. */
  cleanup?(context: C, run: PhaseRun): Promise<void>;
}

export interface Plan<C> {
  /** "provision", "swarm bootstrap", "swarm upgrade". */
  title: string;
  /** The hosts the plan is about, in order (the first manager first). */
  hosts: string[];
  phases: Phase<C>[];
}

export type StepOutcome = 'done' | 'already' | 'would-run' | 'failed' | 'skipped' | 'cleaned';

export interface StepResult {
  phase: string;
  host: string | undefined;
  title: string;
  outcome: StepOutcome;
  /** Milliseconds the step took (run or check), for --timings and the benchmarks. */
  ms: number;
  error?: string;
}

export type PlanEvent =
  | { type: 'plan-start'; plan: string; hosts: string[]; phases: Array<{ id: string; title: string }> }
  | { type: 'phase-start'; plan: string; phase: string; title: string; hosts: Array<string | undefined> }
  | { type: 'step-start'; plan: string; phase: string; host: string | undefined; title: string }
  | { type: 'step-report'; plan: string; phase: string; host: string | undefined; message: string }
  | { type: 'step-end'; plan: string; phase: string; host: string | undefined; title: string; outcome: StepOutcome; ms: number; error?: string }
  | { type: 'phase-end'; plan: string; phase: string; ok: boolean }
  | { type: 'plan-end'; plan: string; ok: boolean; ms: number };

/** Where a running plan's events go (a renderer, a collector in tests). */
export type PlanListener = (event: PlanEvent) => void;

export interface RunPlanOptions {
  dryRun?: boolean;
  signal?: AbortSignal;
  listener?: PlanListener;
  /**
   * Keep going on the other hosts of a parallel phase when one fails; the plan still stops
   * after that phase and the first failure is thrown. Default true.
   */
  continueOnHostError?: boolean;
}

export interface PlanReport {
  results: StepResult[];
  /** Nothing needed to change anywhere. */
  unchanged: boolean;
  ms: number;
}
