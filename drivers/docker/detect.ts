/** Can the docker driver work here, and how many hosts can this computer hold? */
import fs from 'node:fs';
import os from 'node:os';
import type { Detection } from '../kit/index.js';
import { SYSTEM_SOCKET, TMACHINE_ENGINE_DIR } from './local-engine.js';

/** A local engine answers (a socket or DOCKER_HOST), or one can be started (root + dockerd). */
export async function detectLocalEngine(): Promise<Detection> {
  const sockets = [process.env['TMACHINE_DOCKER_HOST'], process.env['DOCKER_MACHINE_NAME'] ? undefined : process.env['DOCKER_HOST'], `unix://${SYSTEM_SOCKET}`, `unix://${TMACHINE_ENGINE_DIR}/docker.sock`];
  const found = sockets.find((s) => s && (!s.startsWith('unix://') || fs.existsSync(s.slice('unix://'.length))));
  if (found) return { usable: true, reason: `local engine at ${found}` };
  const dockerd = ['/usr/sbin/dockerd', '/usr/bin/dockerd', '/usr/local/bin/dockerd'].find((p) => fs.existsSync(p));
  if (process.getuid?.() === 0 && dockerd) return { usable: true, reason: `can start ${dockerd}` };
  return { usable: false, reason: 'no local Docker engine answers and none can be started (needs root and docker.io)' };
}

/** Per host: ~300 MiB of memory with a running engine, ~0.6 GB of disk (testhost.md measured 210-270 MiB, ~0.5 GB). */
const HOST_MEMORY_BYTES = 300 * 1024 * 1024;
const HOST_DISK_BYTES = 600 * 1024 * 1024;

export async function hostCapacity(): Promise<{ max: number; reason: string }> {
  const byMemory = Math.floor(os.freemem() / HOST_MEMORY_BYTES);
  let byDisk = Number.POSITIVE_INFINITY;
  try {
    const stats = fs.statfsSync('/var/tmp');
    byDisk = Math.floor((stats.bavail * stats.bsize) / HOST_DISK_BYTES);
  } catch {
    // statfs is missing on very old Node versions; memory alone decides then.
  }
  const max = Math.max(0, Math.min(byMemory, byDisk));
  const reason = byMemory <= byDisk ? `${Math.round(os.freemem() / 2 ** 30)} GiB of free memory holds about ${byMemory} hosts` : `free disk under /var/tmp holds about ${byDisk} hosts`;
  return { max, reason };
}
