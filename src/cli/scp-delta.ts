/**
 * `scp -d/--delta`: only the files whose content differs are sent (Docker Machine used
 * rsync for this; tmachine compares SHA-256 sums over the one SSH connection it has, so
 * the host needs nothing but coreutils).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { TmachineError } from '../errors.js';
import { connectMachine } from '../machine/connect.js';
import { parseLocation } from '../machine/scp.js';
import type { SshConnection } from '../ssh/connection.js';
import type { Store } from '../store/store.js';
import { shellQuote } from '../../provision/os.js';

export interface DeltaResult {
  copied: number;
  unchanged: number;
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Relative path -> sha256 for every file under dir (or the file itself as ""). */
async function localSums(root: string): Promise<Map<string, string>> {
  const sums = new Map<string, string>();
  const stat = await fs.stat(root).catch(() => undefined);
  if (!stat) return sums;
  if (stat.isFile()) {
    sums.set('', await sha256(root));
    return sums;
  }
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const childRel = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(path.join(dir, entry.name), childRel);
      else if (entry.isFile()) sums.set(childRel, await sha256(path.join(dir, entry.name)));
    }
  };
  await walk(root, '');
  return sums;
}

async function remoteSums(conn: SshConnection, root: string): Promise<Map<string, string>> {
  const sums = new Map<string, string>();
  const q = shellQuote(root);
  const out = await conn.exec(`if [ -f ${q} ]; then sha256sum ${q} | sed 's|  .*|  |'; elif [ -d ${q} ]; then cd ${q} && find . -type f -exec sha256sum {} +; fi`);
  for (const line of out.stdout.split('\n')) {
    const m = /^([0-9a-f]{64})  (.*)$/.exec(line);
    if (m) sums.set(m[2]!.replace(/^\.\//, ''), m[1]!);
  }
  return sums;
}

async function remoteIsDir(conn: SshConnection, p: string): Promise<boolean> {
  return (await conn.exec(`test -d ${shellQuote(p)}`)).code === 0;
}

export async function copyDelta(store: Store, sourceSpec: string, destinationSpec: string, recursive: boolean): Promise<DeltaResult> {
  const source = parseLocation(sourceSpec);
  const destination = parseLocation(destinationSpec);
  if (Boolean(source.machine) === Boolean(destination.machine)) {
    throw new TmachineError('--delta copies between this machine and one machine', { hint: 'write NAME:path on exactly one side' });
  }
  const conn = await connectMachine(store, await store.load((source.machine ?? destination.machine)!));
  const result: DeltaResult = { copied: 0, unchanged: 0 };
  try {
    if (destination.machine) {
      const stat = await fs.stat(source.path).catch(() => undefined);
      if (!stat) throw new TmachineError(`${source.path}: no such file or directory`);
      if (stat.isDirectory() && !recursive) throw new TmachineError(`${source.path} is a directory`, { hint: 'pass -r to copy directories' });
      const target = (await remoteIsDir(conn, destination.path)) ? path.posix.join(destination.path, path.basename(source.path)) : destination.path;
      const [mine, theirs] = await Promise.all([localSums(source.path), remoteSums(conn, target)]);
      for (const [rel, sum] of mine) {
        if (theirs.get(rel) === sum) {
          result.unchanged++;
          continue;
        }
        const from = rel ? path.join(source.path, rel) : source.path;
        const to = rel ? path.posix.join(target, rel) : target;
        await conn.run(`mkdir -p ${shellQuote(path.posix.dirname(to))}`, { what: 'mkdir' });
        await conn.upload(from, to, { mode: (await fs.stat(from)).mode & 0o777 });
        result.copied++;
      }
    } else {
      const isDir = await remoteIsDir(conn, source.path);
      if (isDir && !recursive) throw new TmachineError(`${conn.label}:${source.path} is a directory`, { hint: 'pass -r to copy directories' });
      const localDir = (await fs.stat(destination.path).catch(() => undefined))?.isDirectory() ?? false;
      const target = localDir ? path.join(destination.path, path.posix.basename(source.path)) : destination.path;
      const [theirs, mine] = await Promise.all([remoteSums(conn, source.path), localSums(target)]);
      if (theirs.size === 0 && !isDir) throw new TmachineError(`${conn.label}:${source.path}: no such file or directory`);
      for (const [rel, sum] of theirs) {
        if (mine.get(rel) === sum) {
          result.unchanged++;
          continue;
        }
        const to = rel ? path.join(target, rel) : target;
        await fs.mkdir(path.dirname(to), { recursive: true });
        await conn.download(rel ? path.posix.join(source.path, rel) : source.path, to);
        result.copied++;
      }
    }
  } finally {
    conn.close();
  }
  return result;
}
