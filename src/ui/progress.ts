/**
 * The one progress UI: listr2, one line per host per step; plain lines (listr2's simple
 * renderer) when stdout is not a TTY, nothing when --json asks for clean output.
 */
import { Listr, ListrLogger, type ListrTask } from 'listr2';
import { redact } from './redact.js';

export interface ProgressOptions {
  concurrent?: boolean | number;
  /** No output at all (--json). */
  silent?: boolean;
  /** Keep going with the other tasks when one fails; the first error is still thrown at the end. */
  continueOnError?: boolean;
}

export interface TaskUi {
  /** A transient detail line under the task ("uploading 40%"). */
  report(message: string): void;
  setTitle(title: string): void;
  skip(message: string): void;
  /** Runs nested tasks under this one. */
  subtasks(tasks: UiTask[], options?: ProgressOptions): Promise<void>;
}

export interface UiTask {
  title: string;
  run(ui: TaskUi): Promise<void>;
}

function toListr(task: UiTask): ListrTask<unknown> {
  return {
    title: redact(task.title),
    task: async (_ctx, wrapper) => {
      // Progress details (upload percentages) at most once a second: one line each when not a TTY.
      let lastReport = 0;
      const ui: TaskUi = {
        report: (message) => {
          const now = Date.now();
          if (now - lastReport < 1_000) return;
          lastReport = now;
          wrapper.output = redact(message);
        },
        setTitle: (title) => {
          wrapper.title = redact(title);
        },
        skip: (message) => wrapper.skip(redact(message)),
        subtasks: async (tasks, options = {}) => {
          await wrapper
            .newListr(tasks.map(toListr), {
              concurrent: options.concurrent ?? false,
              exitOnError: !options.continueOnError,
              rendererOptions: { collapseSubtasks: false },
            })
            .run();
        },
      };
      await task.run(ui);
    },
  };
}

/**
 * Runs the tasks; with continueOnError every task gets its chance, and then the first
 * failure is thrown (listr2 alone would only collect it).
 */
export async function runTasks(tasks: UiTask[], options: ProgressOptions = {}): Promise<void> {
  const failures: unknown[] = [];
  const tracked = tasks.map((t) => ({
    ...t,
    run: async (ui: TaskUi) => {
      try {
        await t.run(ui);
      } catch (error) {
        failures.push(error);
        throw error;
      }
    },
  }));
  const list = new Listr(tracked.map(toListr), {
    concurrent: options.concurrent ?? false,
    exitOnError: !options.continueOnError,
    collectErrors: false,
    renderer: options.silent ? 'silent' : 'default',
    fallbackRenderer: 'simple',
    rendererOptions: { collapseSubtasks: false, collapseSkips: false, showErrorMessage: false },
    // Progress (failures included) stays on stdout: stderr carries only the one error line.
    fallbackRendererOptions: { timer: undefined, logger: new ListrLogger({ useIcons: true, toStderr: [] }) },
    registerSignalListeners: true,
  });
  await list.run().catch((error: unknown) => {
    if (!failures.includes(error)) failures.push(error);
  });
  if (failures.length > 0) throw failures[0];
}
