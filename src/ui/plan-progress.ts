/**
 * Renderers of plan events (src/plan): listr2 lines on a TTY, listr2's plain lines when not
 * a TTY, one JSON object per line for --json, or nothing. The plan runner knows none of them.
 */
import { Listr, ListrLogger, type DefaultRenderer, type ListrTaskWrapper, type SimpleRenderer } from 'listr2';
import type { PlanEvent, PlanListener } from '../plan/types.js';
import { redact } from './redact.js';

export type ProgressMode = 'auto' | 'json' | 'silent';

export interface PlanProgress {
  listener: PlanListener;
  /** Resolves when everything the plan emitted has been drawn. */
  finished(): Promise<void>;
}

export function planProgress(mode: ProgressMode = 'auto'): PlanProgress {
  if (mode === 'silent') return { listener: () => undefined, finished: async () => undefined };
  if (mode === 'json') return jsonProgress();
  return listrProgress();
}

/** --json: one object per event on stdout (redacted), for scripts and the benchmarks. */
function jsonProgress(): PlanProgress {
  return {
    listener: (event) => {
      if (event.type === 'step-report') return;
      process.stdout.write(redact(JSON.stringify({ ...event, at: new Date().toISOString() })) + '\n');
    },
    finished: async () => undefined,
  };
}

type Wrapper = ListrTaskWrapper<unknown, typeof DefaultRenderer, typeof SimpleRenderer>;

type StepEnd = Extract<PlanEvent, { type: 'step-end' }>;

/** A queue of events for one (phase, host) line that a listr2 task consumes. */
class Channel<T> {
  private items: T[] = [];
  private waiters: Array<(item: T) => void> = [];
  push(item: T): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.items.push(item);
  }
  next(): Promise<T> {
    const item = this.items.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

type HostEvent = Extract<PlanEvent, { type: 'step-start' | 'step-end' | 'step-report' }> | { type: 'phase-over' };
type PhaseEvent = Extract<PlanEvent, { type: 'phase-start' }> | { type: 'skipped' };

function listrProgress(): PlanProgress {
  const phaseChannels = new Map<string, Channel<PhaseEvent>>();
  const hostChannels = new Map<string, Channel<HostEvent>>();
  const hostKey = (phase: string, host: string | undefined) => `${phase.split('/')[0]}\u0000${host ?? ''}`;
  const hostChannel = (phase: string, host: string | undefined) => {
    const key = hostKey(phase, host);
    let channel = hostChannels.get(key);
    if (!channel) hostChannels.set(key, (channel = new Channel()));
    return channel;
  };
  let started: Promise<void> | undefined;
  let phaseOrder: string[] = [];
  const seen = new Set<string>();
  const hostsOf = new Map<string, Array<string | undefined>>();
  const failedPhases = new Set<string>();

  const hostTask = async (phase: string, host: string | undefined, title: string, task: Wrapper) => {
    const channel = hostChannel(phase, host);
    const label = (t: string) => redact(host ? `${host}: ${t}` : t);
    task.title = label(title);
    for (;;) {
      const event = await channel.next();
      if (event.type === 'phase-over') return;
      if (event.type === 'step-report') {
        task.output = redact(event.message);
        continue;
      }
      if (event.type === 'step-start' && event.phase === phase) {
        task.title = label(event.title);
        continue;
      }
      if (event.type === 'step-start') {
        // A sub-step of a pipeline: its own line under the host, finished by its step-end.
        const sub = event.phase;
        await task
          .newListr(
            [
              {
                title: label(event.title),
                task: async (_ctx, subTask) => {
                  for (;;) {
                    const next = await channel.next();
                    if (next.type === 'step-report') {
                      subTask.output = redact(next.message);
                      continue;
                    }
                    if (next.type === 'step-end' && next.phase === sub) return finish(subTask, next, label);
                    if (next.type === 'phase-over') return;
                  }
                },
              },
            ],
            { exitOnError: false, rendererOptions: { collapseSubtasks: false } },
          )
          .run()
          .catch(() => undefined);
        continue;
      }
      if (event.type === 'step-end' && event.phase === phase) return finish(task, event, label);
    }
  };

  const finish = (task: Wrapper, event: StepEnd, label: (t: string) => string) => {
    if (event.outcome === 'already') return task.skip(label(`${event.title} (already done)`));
    if (event.outcome === 'would-run') return task.skip(label(`${event.title} (would run)`));
    if (event.outcome === 'failed') throw new Error(redact(event.error ?? 'failed'));
    task.title = label(event.title);
  };

  const start = (phases: Array<{ id: string; title: string }>) => {
    phaseOrder = phases.map((p) => p.id);
    for (const p of phases) phaseChannels.set(p.id, new Channel());
    const list = new Listr(
      phases.map((p) => ({
        title: redact(p.title),
        task: async (_ctx: unknown, task: Wrapper) => {
          const first = await phaseChannels.get(p.id)!.next();
          if (first.type === 'skipped') return task.skip(redact(`${p.title} (nothing to do)`));
          const hosts = first.hosts;
          if (hosts.length === 1 && hosts[0] === undefined) return hostTask(p.id, undefined, p.title, task);
          await task
            .newListr(
              hosts.map((host) => ({ title: redact(`${host}: ${p.title}`), task: (_c: unknown, t: Wrapper) => hostTask(p.id, host, p.title, t) })),
              { concurrent: true, exitOnError: false, rendererOptions: { collapseSubtasks: false } },
            )
            .run()
            .catch(() => undefined);
          if (failedPhases.has(p.id)) throw new Error(redact(`${p.title}: failed`));
        },
      })),
      {
        concurrent: false,
        exitOnError: false,
        renderer: 'default',
        fallbackRenderer: 'simple',
        rendererOptions: { collapseSubtasks: false, collapseSkips: false, showErrorMessage: false },
        // Progress (failures included) stays on stdout: stderr carries only the one error line.
        fallbackRendererOptions: { timer: undefined, logger: new ListrLogger({ useIcons: true, toStderr: [] }) },
        registerSignalListeners: false,
      },
    );
    started = list.run().then(
      () => undefined,
      () => undefined,
    );
  };

  const skipUntil = (phase: string | undefined) => {
    for (const id of phaseOrder) {
      if (id === phase) return;
      if (!seen.has(id)) {
        seen.add(id);
        phaseChannels.get(id)?.push({ type: 'skipped' });
      }
    }
  };

  return {
    listener: (event) => {
      switch (event.type) {
        case 'plan-start':
          start(event.phases);
          return;
        case 'phase-start':
          skipUntil(event.phase);
          seen.add(event.phase);
          hostsOf.set(event.phase, event.hosts);
          phaseChannels.get(event.phase)?.push(event);
          return;
        case 'step-start':
        case 'step-end':
        case 'step-report':
          hostChannel(event.phase, event.host).push(event);
          return;
        case 'phase-end':
          if (!event.ok) failedPhases.add(event.phase);
          for (const host of hostsOf.get(event.phase) ?? []) hostChannel(event.phase, host).push({ type: 'phase-over' });
          return;
        case 'plan-end':
          skipUntil(undefined);
          return;
      }
    },
    finished: async () => {
      await started;
    },
  };
}
