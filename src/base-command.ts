/**
 * Every tmachine command extends this: the global flags (--debug, --storage-path), the
 * store, and --json handling. Commands stay thin: parse flags, call the core, print.
 */
import { Command, Flags, Interfaces } from '@oclif/core';
import { redact } from './redact.js';
import { Store } from './store/store.js';
import { defaultStorePath } from './store/paths.js';

// oclif's own constraint for parsed flag/arg objects (its FlagOutput/ArgOutput are not exported).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ParsedValues = { [name: string]: any };

export abstract class BaseCommand extends Command {
  static override baseFlags = {
    debug: Flags.boolean({ description: 'Log the remote commands and API calls run (secrets redacted)', helpGroup: 'GLOBAL' }),
    'storage-path': Flags.string({
      description: 'Where tmachine keeps machines, certificates and caches',
      env: 'TMACHINE_STORAGE_PATH',
      helpGroup: 'GLOBAL',
    }),
  };

  private storePromise: Promise<Store> | undefined;

  /**
   * Every repeatable flag takes one value per occurrence and never the positional
   * arguments after it: `create --engine-label a=b NAME` is Docker Machine's syntax, and
   * oclif's default (greedy) parsing would eat NAME as a second label.
   */
  protected override async parse<F extends ParsedValues, B extends ParsedValues, A extends ParsedValues>(
    options?: Interfaces.Input<F, B, A>,
    argv?: string[],
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    const input = options ?? (this.ctor as unknown as Interfaces.Input<F, B, A>);
    return super.parse({ ...input, flags: nonGreedy(input.flags), baseFlags: nonGreedy(input.baseFlags) } as Interfaces.Input<F, B, A>, argv);
  }

  /** The store named by --storage-path / $TMACHINE_STORAGE_PATH / ~/.tmachine. */
  protected store(): Promise<Store> {
    if (!this.storePromise) {
      const i = this.argv.indexOf('--storage-path');
      const fromFlag =
        i >= 0 ? this.argv[i + 1] : this.argv.find((a) => a.startsWith('--storage-path='))?.slice('--storage-path='.length);
      this.storePromise = Store.open(fromFlag ?? defaultStorePath());
    }
    return this.storePromise;
  }

  /** Data to stdout: JSON when asked, else the given text. */
  /** Data to stdout, through the same redaction as every log line (a stored URL's password, a token). */
  protected print(text: string): void {
    process.stdout.write(redact(text.endsWith('\n') ? text : text + '\n'));
  }

  protected printJson(value: unknown): void {
    process.stdout.write(redact(JSON.stringify(value, null, 2) + '\n'));
  }

  // Errors go to bin/run.js, which prints the single line; oclif's default would add noise.
  protected override async catch(error: Error & { exitCode?: number }): Promise<never> {
    throw error;
  }
}

function nonGreedy<T>(flags: T): T {
  if (!flags) return flags;
  return Object.fromEntries(
    Object.entries(flags as Record<string, { multiple?: boolean }>).map(([name, flag]) => [name, flag.multiple ? { ...flag, multipleNonGreedy: true } : flag]),
  ) as T;
}
