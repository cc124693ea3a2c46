import os from 'node:os';
import path from 'node:path';

/** Where the store lives: --storage-path, $TMACHINE_STORAGE_PATH, or ~/.tmachine. */
export function defaultStorePath(): string {
  return process.env['TMACHINE_STORAGE_PATH'] || path.join(os.homedir(), '.tmachine');
}

/** Engine bundles and host images are shared between stores when $TMACHINE_CACHE_PATH is set. */
export function cachePath(storePath: string): string {
  return process.env['TMACHINE_CACHE_PATH'] || path.join(storePath, 'cache');
}
