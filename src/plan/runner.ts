/**
 * Runs a plan: phases in order; inside a phase, hosts as its scope says. Every step first
 * asks needsRun() (so re-runs redo nothing), emits events for the renderers, and collects
 * results. When a phase fails, the phases that already ran get their cleanup() on the hosts
 * they changed, newest first, and the first failure is thrown.
 */
import pLimit from 'p-limit';
import type { Phase, PhaseRun, Plan, PlanEvent, PlanReport, RunPlanOptions, StepOutcome, StepResult, SubStep } from './types.js';

export class PlanInterrupted extends Error {
  constructor(message = 'interrupted') {
    super(message);
    this.name = 'PlanInterrupted';
  }
}

export async function runPlan<C>(plan: Plan<C>, context: C, options: RunPlanOptions = {}): Promise<PlanReport> {
  const started = Date.now();
  const emit = (event: PlanEvent) => options.listener?.(event);
  const signal = options.signal ?? new AbortController().signal;
  const results: StepResult[] = [];
  /** Phases that changed something, with the hosts they changed, for cleanup. */
  const changed: Array<{ phase: Phase<C>; hosts: Array<string | undefined> }> = [];
  const continueOnHostError = options.continueOnHostError ?? true;

  emit({ type: 'plan-start', plan: plan.title, hosts: plan.hosts, phases: plan.phases.map((p) => ({ id: p.id, title: p.title })) });
  try {
    for (const phase of plan.phases) {
      if (signal.aborted) throw abortError(signal);
      const hosts: Array<string | undefined> = phase.scope.kind === 'cluster' ? [undefined] : await phase.prepare?.(context, plan.hosts) ?? [...plan.hosts];
      if (hosts.length === 0) continue;
      emit({ type: 'phase-start', plan: plan.title, phase: phase.id, title: phase.title, hosts });
      const touched: Array<string | undefined> = [];
      const step = (host: string | undefined) => runStep(plan.title, phase, host, context, signal, options.dryRun ?? false, emit, results, touched);
      let failure: unknown;
      const note = (error: unknown) => {
        failure ??= error;
      };
      switch (phase.scope.kind) {
        case 'cluster':
        case 'serial':
          for (const host of hosts) {
            try {
              await step(host);
            } catch (error) {
              note(error);
              break;
            }
          }
          break;
        case 'parallel': {
          const limit = pLimit(phase.scope.concurrency ?? Math.max(1, hosts.length));
          await Promise.all(
            hosts.map((host) =>
              limit(async () => {
                if (failure !== undefined && !continueOnHostError) return;
                await step(host).catch(note);
              }),
            ),
          );
          break;
        }
        case 'batches': {
          for (let i = 0; i < hosts.length && failure === undefined; i += phase.scope.size) {
            await Promise.all(hosts.slice(i, i + phase.scope.size).map((host) => step(host).catch(note)));
          }
          break;
        }
      }
      if (touched.length > 0) changed.push({ phase, hosts: touched });
      emit({ type: 'phase-end', plan: plan.title, phase: phase.id, ok: failure === undefined });
      if (failure !== undefined) throw failure;
    }
  } catch (error) {
    if (!options.dryRun) await cleanUp(plan.title, changed, context, signal, emit, results);
    emit({ type: 'plan-end', plan: plan.title, ok: false, ms: Date.now() - started });
    throw error;
  }
  emit({ type: 'plan-end', plan: plan.title, ok: true, ms: Date.now() - started });
  // A pipeline phase's own line says nothing about change; its sub-steps do.
  const pipelines = new Set(plan.phases.filter((p) => p.pipeline).map((p) => p.id));
  const unchanged = results.every((r) => r.outcome === 'already' || r.outcome === 'skipped' || pipelines.has(r.phase));
  return { results, unchanged, ms: Date.now() - started };
}

async function runStep<C>(
  planTitle: string,
  phase: Phase<C>,
  host: string | undefined,
  context: C,
  signal: AbortSignal,
  dryRun: boolean,
  emit: (e: PlanEvent) => void,
  results: StepResult[],
  touched: Array<string | undefined>,
): Promise<void> {
  const title = dryRun ? (phase.describe?.(context, host) ?? phase.title) : phase.title;
  const started = Date.now();
  const run: PhaseRun = {
    host,
    signal,
    dryRun,
    report: (message) => emit({ type: 'step-report', plan: planTitle, phase: phase.id, host, message }),
    step: (sub) => runSubStep(planTitle, `${phase.id}/${sub.id}`, sub, host, signal, dryRun, emit, results),
  };
  const end = (outcome: StepResult['outcome'], error?: unknown) => {
    const ms = Date.now() - started;
    const message = error === undefined ? undefined : error instanceof Error ? error.message : String(error);
    results.push({ phase: phase.id, host, title, outcome, ms, ...(message ? { error: message } : {}) });
    emit({ type: 'step-end', plan: planTitle, phase: phase.id, host, title, outcome, ms, ...(message ? { error: message } : {}) });
  };
  emit({ type: 'step-start', plan: planTitle, phase: phase.id, host, title });
  try {
    if (signal.aborted) throw abortError(signal);
    if (phase.needsRun && !(await phase.needsRun(context, run))) return end('already');
    if (dryRun && !phase.pipeline) return end('would-run');
    if (!dryRun) touched.push(host);
    await phase.run(context, run);
    end(dryRun ? 'would-run' : 'done');
  } catch (error) {
    end('failed', error);
    throw error;
  }
}

async function runSubStep(
  planTitle: string,
  phaseId: string,
  sub: SubStep,
  host: string | undefined,
  signal: AbortSignal,
  dryRun: boolean,
  emit: (e: PlanEvent) => void,
  results: StepResult[],
): Promise<StepOutcome> {
  const started = Date.now();
  const end = (outcome: StepOutcome, error?: unknown): StepOutcome => {
    const ms = Date.now() - started;
    const message = error === undefined ? undefined : error instanceof Error ? error.message : String(error);
    results.push({ phase: phaseId, host, title: sub.title, outcome, ms, ...(message ? { error: message } : {}) });
    emit({ type: 'step-end', plan: planTitle, phase: phaseId, host, title: sub.title, outcome, ms, ...(message ? { error: message } : {}) });
    return outcome;
  };
  emit({ type: 'step-start', plan: planTitle, phase: phaseId, host, title: sub.title });
  try {
    if (signal.aborted) throw abortError(signal);
    if (sub.needsRun && !(await sub.needsRun())) return end('already');
    if (dryRun) return end('would-run');
    await sub.run((message) => emit({ type: 'step-report', plan: planTitle, phase: phaseId, host, message }));
    return end('done');
  } catch (error) {
    end('failed', error);
    throw error;
  }
}

async function cleanUp<C>(
  planTitle: string,
  changed: Array<{ phase: Phase<C>; hosts: Array<string | undefined> }>,
  context: C,
  signal: AbortSignal,
  emit: (e: PlanEvent) => void,
  results: StepResult[],
): Promise<void> {
  for (const { phase, hosts } of [...changed].reverse()) {
    if (!phase.cleanup) continue;
    for (const host of hosts) {
      const started = Date.now();
      const title = `undo: ${phase.title}`;
      emit({ type: 'step-start', plan: planTitle, phase: phase.id, host, title });
      try {
        const report = (message: string) => emit({ type: 'step-report', plan: planTitle, phase: phase.id, host, message });
        await phase.cleanup(context, { host, signal, dryRun: false, report, step: async (sub) => (await sub.run(report), 'done') });
        results.push({ phase: phase.id, host, title, outcome: 'cleaned', ms: Date.now() - started });
        emit({ type: 'step-end', plan: planTitle, phase: phase.id, host, title, outcome: 'cleaned', ms: Date.now() - started });
      } catch (error) {
        // Clean-up is best effort: the original failure is what the user must see.
        const message = error instanceof Error ? error.message : String(error);
        results.push({ phase: phase.id, host, title, outcome: 'failed', ms: Date.now() - started, error: message });
        emit({ type: 'step-end', plan: planTitle, phase: phase.id, host, title, outcome: 'failed', ms: Date.now() - started, error: message });
      }
    }
  }
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new PlanInterrupted();
}

/** Results of one host, in order (for reports and tests). */
export function resultsOf(report: PlanReport, host: string | undefined): StepResult[] {
  return report.results.filter((r) => r.host === host);
}
