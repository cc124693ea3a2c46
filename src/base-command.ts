/**
 * Every tmachine command extends this: the global flags (--debug, --storage-path), the
 * store, and --json handling. Commands stay thin: parse flags, call the core, print.
 */
import { Command, Flags } from '@oclif/core';
import { Store } from './store/store.js';
import { defaultStorePath } from './store/paths.js';

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

  /** The store named by --storage-path / $TMACHINE_STORAGE_PATH / ~/.tmachine. */
  protected store(): Promise<Store> {
    if (!this.storePromise) {
      const i = this.argv.indexOf('--storage-path');
      const fromFlag = i >= 0 ? this.argv[i + 1] : this.argv.find((a) => a.startsWith('--storage-path='))?.split('=')[1];
      this.storePromise = Store.open(fromFlag ?? defaultStorePath());
    }
    return this.storePromise;
  }

  /** Data to stdout: JSON when asked, else the given text. */
  protected print(text: string): void {
    process.stdout.write(text.endsWith('\n') ? text : text + '\n');
  }

  protected printJson(value: unknown): void {
    process.stdout.write(JSON.stringify(value, null, 2) + '\n');
  }

  // Errors go to bin/run.js, which prints the single line; oclif's default would add noise.
  protected override async catch(error: Error & { exitCode?: number }): Promise<never> {
    throw error;
  }
}
