/** The plan runner on its own: scopes, idempotence, dry-run, pipelines, cleanup, Ctrl-C. */
import { describe, expect, it } from 'vitest';
import { runPlan, type Phase, type PlanEvent } from '../../src/plan/index.js';

interface Ctx {
  log: string[];
  done: Set<string>;
  running: number;
  maxRunning: number;
}

const ctx = (): Ctx => ({ log: [], done: new Set(), running: 0, maxRunning: 0 });

/** A phase whose work on a host is remembered, so a second run finds it done. */
function work(id: string, scope: Phase<Ctx>['scope'], options: { fail?: string; gate?: Promise<void> } = {}): Phase<Ctx> {
  return {
    id,
    title: `do ${id}`,
    scope,
    needsRun: async (c, run) => !c.done.has(`${id}:${run.host}`),
    run: async (c, run) => {
      c.running++;
      c.maxRunning = Math.max(c.maxRunning, c.running);
      c.log.push(`${id}:${run.host}:start`);
      await options.gate;
      await new Promise((r) => setImmediate(r));
      c.running--;
      if (options.fail !== undefined && options.fail === run.host) throw new Error(`${id} failed on ${run.host}`);
      c.done.add(`${id}:${run.host}`);
      c.log.push(`${id}:${run.host}:end`);
    },
    cleanup: async (c, run) => {
      c.log.push(`${id}:${run.host}:cleanup`);
    },
  };
}

describe('plan runner', () => {
  it('runs serial phases in host order and parallel phases within their bound', async () => {
    const c = ctx();
    await runPlan({ title: 't', hosts: ['a', 'b', 'c', 'd'], phases: [work('one', { kind: 'serial' })] }, c);
    expect(c.log).toEqual(['one:a:start', 'one:a:end', 'one:b:start', 'one:b:end', 'one:c:start', 'one:c:end', 'one:d:start', 'one:d:end']);
    const p = ctx();
    await runPlan({ title: 't', hosts: ['a', 'b', 'c', 'd', 'e'], phases: [work('two', { kind: 'parallel', concurrency: 2 })] }, p);
    expect(p.maxRunning).toBe(2);
    expect(p.done.size).toBe(5);
  });

  it('rolls batches: the next batch starts only after the previous one succeeded, and stops at a failure', async () => {
    const c = ctx();
    const plan = { title: 'roll', hosts: ['a', 'b', 'c', 'd', 'e'], phases: [work('up', { kind: 'batches', size: 2 }, { fail: 'c' })] };
    await expect(runPlan(plan, c)).rejects.toThrow('up failed on c');
    expect(c.maxRunning).toBe(2);
    expect(c.log.filter((l) => l.endsWith(':start')).map((l) => l.split(':')[1])).toEqual(['a', 'b', 'c', 'd']);
    expect(c.done.has('up:e')).toBe(false);
  });

  it('a second run of the same plan changes nothing and says so', async () => {
    const c = ctx();
    const plan = { title: 't', hosts: ['a', 'b'], phases: [work('x', { kind: 'parallel' }), work('y', { kind: 'cluster' })] };
    const first = await runPlan(plan, c);
    expect(first.unchanged).toBe(false);
    const second = await runPlan(plan, c);
    expect(second.unchanged).toBe(true);
    expect(second.results.map((r) => r.outcome)).toEqual(['already', 'already', 'already']);
  });

  it('--dry-run asks every phase, runs none, and describes what would run', async () => {
    const c = ctx();
    const phase = { ...work('x', { kind: 'parallel' }), describe: (_: Ctx, host: string | undefined) => `would do x on ${host}` };
    const report = await runPlan({ title: 't', hosts: ['a', 'b'], phases: [phase] }, c, { dryRun: true });
    expect(c.log).toEqual([]);
    expect(report.results.map((r) => `${r.title}=${r.outcome}`)).toEqual(['would do x on a=would-run', 'would do x on b=would-run']);
  });

  it('pipelines run their sub-steps per host without waiting for other hosts, with one result each', async () => {
    let releaseSlow!: () => void;
    const slow = new Promise<void>((r) => (releaseSlow = r));
    const order: string[] = [];
    const pipeline: Phase<Ctx> = {
      id: 'm',
      title: 'machine',
      scope: { kind: 'parallel' },
      pipeline: true,
      run: async (_c, run) => {
        for (const step of ['host', 'ssh', 'engine']) {
          await run.step({
            id: step,
            title: step,
            needsRun: async () => !(run.host === 'b' && step === 'ssh'),
            run: async () => {
              if (run.host === 'a' && step === 'host') await slow;
              order.push(`${run.host}:${step}`);
              if (run.host === 'b' && step === 'engine') releaseSlow();
            },
          });
        }
      },
    };
    const report = await runPlan({ title: 't', hosts: ['a', 'b'], phases: [pipeline] }, ctx());
    // b finished its whole pipeline while a was still making its host.
    expect(order).toEqual(['b:host', 'b:engine', 'a:host', 'a:ssh', 'a:engine']);
    expect(report.results.filter((r) => r.host === 'b').map((r) => `${r.phase}=${r.outcome}`)).toEqual(['m/host=done', 'm/ssh=already', 'm/engine=done', 'm=done']);
  });

  it('a failing phase cleans up the phases that changed hosts, newest first, and throws the first failure', async () => {
    const c = ctx();
    const plan = { title: 't', hosts: ['a', 'b'], phases: [work('make', { kind: 'parallel' }), work('join', { kind: 'serial' }, { fail: 'b' })] };
    await expect(runPlan(plan, c)).rejects.toThrow('join failed on b');
    const cleanups = c.log.filter((l) => l.endsWith(':cleanup'));
    expect(cleanups).toEqual(['join:a:cleanup', 'join:b:cleanup', 'make:a:cleanup', 'make:b:cleanup']);
  });

  it('stops at the next step when the signal aborts, cleans up, and emits events a renderer can follow', async () => {
    const controller = new AbortController();
    const events: PlanEvent[] = [];
    const c = ctx();
    const abortAfterFirst: Phase<Ctx> = { ...work('first', { kind: 'cluster' }), run: async (cc) => void (cc.log.push('first'), controller.abort(new Error('interrupted by the test'))) };
    const plan = { title: 't', hosts: ['a'], phases: [abortAfterFirst, work('second', { kind: 'parallel' })] };
    await expect(runPlan(plan, c, { signal: controller.signal, listener: (e) => events.push(e) })).rejects.toThrow('interrupted by the test');
    expect(c.log).toEqual(['first', 'first:undefined:cleanup']);
    expect(events.map((e) => e.type)).toEqual(['plan-start', 'phase-start', 'step-start', 'step-end', 'phase-end', 'step-start', 'step-end', 'plan-end']);
    expect(events.at(-1)).toMatchObject({ type: 'plan-end', ok: false });
  });
});
