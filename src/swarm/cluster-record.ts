/**
 * What tmachine remembers about a cluster (clusters/NAME.json in the store): its members and
 * wanted manager count (for recovery), swarm options, and the stacks deployed through it
 * (for the ordered restart). The swarm itself stays the source of truth for membership.
 * Everything goes through the Store (atomic writes, schema version, lock).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { TmachineError } from '../errors.js';
import type { Store } from '../store/store.js';
import { info } from '../ui/log.js';

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

/** Records written before the schema version was stored carry none; nothing to change yet. */
function migrate(raw: Record<string, unknown>): Record<string, unknown> {
  const { schemaVersion: _version, ...rest } = raw;
  return rest;
}

function clusterFile(store: Store, name: string): string {
  return path.join(store.clustersDir, `${name}.json`);
}

export async function listClusters(store: Store): Promise<string[]> {
  const entries = await fs.readdir(store.clustersDir).catch(() => [] as string[]);
  return entries.filter((e) => e.endsWith('.json')).map((e) => e.slice(0, -5)).sort();
}

export async function loadCluster(store: Store, name: string): Promise<ClusterRecord | undefined> {
  return store.loadDocument(clusterFile(store, name), clusterRecordSchema, migrate);
}

/** Read-modify-write of a cluster record under its record lock; `change` gets undefined for a new cluster. */
export async function updateCluster(store: Store, name: string, change: (current: ClusterRecord | undefined) => ClusterRecord): Promise<ClusterRecord> {
  return store.withNamedLock(`cluster-record-${name}`, async () => {
    const next = change(await loadCluster(store, name));
    await store.saveDocument(clusterFile(store, name), clusterRecordSchema, next);
    return next;
  });
}

/**
 * The cluster lock: two commands that change the same cluster never interleave. The second
 * waits (saying once for whom) up to `waitMs`, then fails naming the holder.
 */
export async function withClusterLock<T>(store: Store, name: string, holder: string, waitMs = 15 * 60_000, fn: () => Promise<T>): Promise<T> {
  return store.withNamedLock(`cluster-${name}`, fn, {
    holder: `\`tmachine ${holder}\``,
    waitMs,
    onWait: (who) => info(`cluster ${name} is busy: waiting for ${who} to finish`),
  });
}

/** Where the stack files deployed through a cluster are kept (for redeploys after a restart). */
export function stacksDir(store: Store, cluster: string): string {
  return path.join(store.clustersDir, cluster, 'stacks');
}

/** Forgets a cluster: its record and the stack files kept for it. */
export async function removeCluster(store: Store, name: string): Promise<void> {
  await store.withNamedLock(`cluster-record-${name}`, async () => {
    await fs.rm(path.join(store.clustersDir, name), { recursive: true, force: true });
    await fs.rm(clusterFile(store, name), { force: true });
  });
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
