/**
 * The plans of the machine commands: `create` (identical machines in one driver call where
 * the driver can, then a pipeline per machine) and `provision` / `regenerate-certs` /
 * `upgrade` (a pipeline per existing machine). `swarm bootstrap` adds its swarm phases to
 * the same machine phases (src/swarm/bootstrap.ts).
 */
import { runPlan } from '../plan/runner.js';
import type { PlanReport, StepOutcome } from '../plan/types.js';
import type { EngineOptions } from '../store/machine-record.js';
import type { Store } from '../store/store.js';
import { info } from '../ui/log.js';
import { planProgress, type ProgressMode } from '../ui/plan-progress.js';
import type { PreparedCreate } from './create.js';
import { createTogetherPhase, machinesContext, machinesPhase, sharedEngineSource } from './pipeline.js';

export interface CreateMachinesOptions {
  keepOnFailure?: boolean;
  progress?: ProgressMode;
  signal?: AbortSignal;
}

/**
 * Creates machines in parallel as one plan: identical machines of a many-at-once driver in
 * one call, then a pipeline per machine. All get the identical engine.
 */
export async function createMachines(store: Store, prepared: PreparedCreate[], options: CreateMachinesOptions = {}): Promise<PlanReport> {
  const context = machinesContext(store, { creates: new Map(prepared.map((p) => [p.request.name, p])), keepOnFailure: options.keepOnFailure ?? false });
  const progress = planProgress(options.progress ?? 'auto');
  try {
    return await runPlan({ title: 'create', hosts: prepared.map((p) => p.request.name), phases: [createTogetherPhase(), machinesPhase('create')] }, context, {
      ...(options.signal ? { signal: options.signal } : {}),
      listener: progress.listener,
    });
  } finally {
    await progress.finished();
    await context.ssh.closeAll();
  }
}

export interface ProvisionMachinesOptions {
  dryRun?: boolean;
  dataPathPort?: number;
  forceCerts?: boolean;
  /** Replaces the machines' engine options first (upgrade). */
  engine?: (current: EngineOptions) => EngineOptions;
  /** Progress rendering (default: listr2 lines). */
  progress?: ProgressMode;
  signal?: AbortSignal;
}

export interface ProvisionStepResult {
  id: string;
  title: string;
  outcome: StepOutcome;
}

/**
 * provision / regenerate-certs / upgrade: provisions existing machines in parallel (one
 * plan, a pipeline per machine) and says per machine whether anything changed. Returns the
 * step results per machine.
 */
export async function provisionMachines(store: Store, names: string[], options: ProvisionMachinesOptions = {}): Promise<Map<string, ProvisionStepResult[]>> {
  for (const name of names) await store.load(name);
  const context = machinesContext(store, {
    engineSource: sharedEngineSource(store),
    ...(options.engine ? { engineChange: options.engine } : {}),
    ...(options.forceCerts ? { forceCerts: true } : {}),
    ...(options.dataPathPort ? { dataPathPort: options.dataPathPort } : {}),
  });
  const progress = planProgress(options.progress ?? 'auto');
  let report: PlanReport | undefined;
  let failure: unknown;
  try {
    report = await runPlan({ title: 'provision', hosts: names, phases: [machinesPhase('provision')] }, context, {
      dryRun: options.dryRun ?? false,
      listener: progress.listener,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    failure = error;
  } finally {
    await progress.finished();
    await context.ssh.closeAll();
  }
  const outcome = new Map<string, ProvisionStepResult[]>();
  for (const name of names) outcome.set(name, []);
  for (const r of report?.results ?? []) {
    if (!r.host || !r.phase.startsWith('machine/')) continue;
    outcome.get(r.host)?.push({ id: r.phase.slice('machine/'.length), title: r.title, outcome: r.outcome });
  }
  if (failure !== undefined) throw failure;
  for (const [name, results] of outcome) {
    const ran = results.filter((r) => r.outcome === 'done' || r.outcome === 'would-run');
    if (ran.length === 0) info(`${name}: nothing to change (${results.length} steps already done)`);
    else info(`${name}: ${options.dryRun ? 'would run' : 'ran'} ${ran.map((r) => r.id).join(', ')}`);
  }
  return outcome;
}
