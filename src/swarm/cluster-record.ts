/**
 * What tmachine remembers about a cluster (clusters/NAME.json in the store): its members and
 * wanted manager count (for recovery), swarm options, and the stacks deployed through it
 * (for the ordered restart). The swarm itself stays the source of truth for membership.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { z } from 'zod';
import { TmachineError } from '../errors.js';
import type { Store } from '../store/store.js';

export const clusterRecordSchema = z.object({
  name: z.string(),
  createdAt: z.string(),
  managers: z.number().int(),
  nodes: z.array(z.object({ name: z.string(), role: z.enum(['manager', 'worker']) })),
  swarm: z
    .object({
      advertise: z.enum(['private', 'public']).default('private'),
      dataPathPort: z.number().int().optional(),
      mtu: z.number().int().optional(),
      encryptedOverlay: z.boolean().default(false),
    })
    .default({ advertise: 'private', encryptedOverlay: false }),
  stacks: z.array(z.object({ name: z.string(), file: z.string(), deployedAt: z.string() })).default([]),
});
export type ClusterRecord = z.infer<typeof clusterRecordSchema>;

function clustersDir(store: Store): string {
  return path.join(store.root, 'clusters');
}

export async function listClusters(store: Store): Promise<string[]> {
  const entries = await fs.readdir(clustersDir(store)).catch(() => [] as string[]);
  return entries.filter((e) => e.endsWith('.json')).map((e) => e.slice(0, -5)).sort();
}

export async function loadCluster(store: Store, name: string): Promise<ClusterRecord | undefined> {
  const text = await fs.readFile(path.join(clustersDir(store), `${name}.json`), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  return clusterRecordSchema.parse(JSON.parse(text));
}

export async function saveCluster(store: Store, record: ClusterRecord): Promise<void> {
  await store.ensureDir(clustersDir(store));
  await writeFileAtomic(path.join(clustersDir(store), `${record.name}.json`), JSON.stringify(clusterRecordSchema.parse(record), null, 2) + '\n', {
    mode: 0o600,
  });
}

/** Where the stack files deployed through a cluster are kept (for redeploys after a restart). */
export function stacksDir(store: Store, cluster: string): string {
  return path.join(clustersDir(store), cluster, 'stacks');
}

/** Forgets a cluster: its record and the stack files kept for it. */
export async function removeCluster(store: Store, name: string): Promise<void> {
  await fs.rm(path.join(clustersDir(store), name), { recursive: true, force: true });
  await fs.rm(path.join(clustersDir(store), `${name}.json`), { force: true });
}

/** The cluster a command means: --cluster, or the only one in the store. */
export async function resolveClusterName(store: Store, given?: string): Promise<string> {
  const names = await listClusters(store);
  if (given) {
    if (!names.includes(given)) throw new TmachineError(`cluster "${given}" does not exist`, { hint: names.length ? `clusters: ${names.join(', ')}` : 'create one with `tmachine swarm bootstrap`' });
    return given;
  }
  if (names.length === 1) return names[0]!;
  if (names.length === 0) throw new TmachineError('no swarm has been bootstrapped in this store', { hint: 'run `tmachine swarm bootstrap`' });
  throw new TmachineError(`this store holds several clusters (${names.join(', ')})`, { hint: 'pass --cluster NAME' });
}

export async function requireCluster(store: Store, given?: string): Promise<ClusterRecord> {
  const name = await resolveClusterName(store, given);
  const record = await loadCluster(store, name);
  if (!record) throw new TmachineError(`cluster "${name}" does not exist`);
  return record;
}
