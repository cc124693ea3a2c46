/**
 * scp: [NAME:]SRC [NAME:]DST over the machine's SFTP channel (one SSH layer). Directories
 * (-r) are walked file by file; machine-to-machine copies go through a local temp dir.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { TmachineError } from '../errors.js';
import type { SshConnection } from '../ssh/connection.js';
import type { Store } from '../store/store.js';
import { shellQuote } from '../../provision/os.js';
import { connectMachine } from './connect.js';

interface Location {
  machine?: string;
  path: string;
}

export function parseLocation(spec: string): Location {
  // A Windows-less world: "name:path" is remote unless the part before ":" contains a slash.
  const m = /^([a-zA-Z0-9][a-zA-Z0-9.-]{0,62}):(.*)$/.exec(spec);
  if (m && !m[1]!.includes('/')) return { machine: m[1]!, path: m[2] || '.' };
  return { path: spec };
}

async function remoteIsDir(conn: SshConnection, p: string): Promise<boolean> {
  return (await conn.exec(`test -d ${shellQuote(p)}`)).code === 0;
}

async function localIsDir(p: string): Promise<boolean> {
  return (await fs.stat(p).catch(() => undefined))?.isDirectory() ?? false;
}

async function upload(conn: SshConnection, local: string, remote: string, recursive: boolean): Promise<void> {
  const stat = await fs.stat(local).catch(() => {
    throw new TmachineError(`${local}: no such file or directory`);
  });
  const target = (await remoteIsDir(conn, remote)) ? path.posix.join(remote, path.basename(local)) : remote;
  if (!stat.isDirectory()) return conn.upload(local, target, { mode: stat.mode & 0o777 });
  if (!recursive) throw new TmachineError(`${local} is a directory`, { hint: 'pass -r to copy directories' });
  await conn.run(`mkdir -p ${shellQuote(target)}`, { what: 'mkdir' });
  for (const entry of await fs.readdir(local, { withFileTypes: true })) {
    const from = path.join(local, entry.name);
    const to = path.posix.join(target, entry.name);
    if (entry.isDirectory()) await upload(conn, from, to, true);
    else if (entry.isFile()) await conn.upload(from, to, { mode: (await fs.stat(from)).mode & 0o777 });
  }
}

async function download(conn: SshConnection, remote: string, local: string, recursive: boolean): Promise<void> {
  const target = (await localIsDir(local)) ? path.join(local, path.posix.basename(remote)) : local;
  if (!(await remoteIsDir(conn, remote))) {
    if ((await conn.exec(`test -e ${shellQuote(remote)}`)).code !== 0) throw new TmachineError(`${conn.label}:${remote}: no such file or directory`);
    return conn.download(remote, target);
  }
  if (!recursive) throw new TmachineError(`${conn.label}:${remote} is a directory`, { hint: 'pass -r to copy directories' });
  const listing = await conn.run(`cd ${shellQuote(remote)} && find . -mindepth 1 \\( -type d -printf 'd %P\\n' \\) -o \\( -type f -printf 'f %P\\n' \\)`, { what: 'find' });
  await fs.mkdir(target, { recursive: true });
  for (const line of listing.split('\n').filter(Boolean)) {
    const kind = line[0];
    const rel = line.slice(2);
    if (kind === 'd') await fs.mkdir(path.join(target, rel), { recursive: true });
    else await conn.download(path.posix.join(remote, rel), path.join(target, rel));
  }
}

export async function copyFiles(store: Store, sourceSpec: string, destinationSpec: string, options: { recursive: boolean }): Promise<void> {
  const source = parseLocation(sourceSpec);
  const destination = parseLocation(destinationSpec);
  const open = async (machine: string) => connectMachine(store, await store.load(machine));
  if (!source.machine && !destination.machine) throw new TmachineError('neither side names a machine', { hint: 'write NAME:path on one side' });
  if (source.machine && destination.machine) {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'tmachine-scp-'));
    try {
      const local = path.join(tmp, path.posix.basename(source.path) || 'copy');
      await copyFiles(store, sourceSpec, local, options);
      await copyFiles(store, local, destinationSpec, options);
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
    return;
  }
  const conn = await open((source.machine ?? destination.machine)!);
  try {
    if (destination.machine) await upload(conn, source.path, destination.path, options.recursive);
    else await download(conn, source.path, destination.path, options.recursive);
  } finally {
    conn.close();
  }
}
