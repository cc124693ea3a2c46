/**
 * A docker context for a machine, made by the docker CLI itself (`docker context create`
 * with the machine's TLS files), so the context store and the exported archive are exactly
 * what `docker context import` expects. An export is made in a throw-away DOCKER_CONFIG and
 * leaves the user's contexts alone.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { TmachineError } from '../errors.js';

const execFileP = promisify(execFile);

export interface ContextTarget {
  /** Context name (docker's rules: letters, digits, ._-). */
  name: string;
  description: string;
  /** tcp://HOST:2376 */
  host: string;
  /** Directory with ca.pem, cert.pem, key.pem (DOCKER_CERT_PATH). */
  certDir: string;
}

const CONTEXT_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$/;

async function docker(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  try {
    return (await execFileP('docker', args, { env, maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new TmachineError('tmachine context needs the docker CLI on PATH', { hint: 'install the docker client (e.g. apt-get install docker.io)' });
    const line = String(e.stderr ?? e.message).trim().split('\n').pop();
    throw new TmachineError(`docker ${args[0]} ${args[1]} failed: ${line}`);
  }
}

function endpoint(target: ContextTarget): string {
  // docker's --docker value is CSV: a comma in a path would need quoting docker cannot read back.
  for (const file of ['ca.pem', 'cert.pem', 'key.pem']) {
    if (path.join(target.certDir, file).includes(',')) {
      throw new TmachineError(`the store path ${target.certDir} contains a comma, which docker context cannot take`, { hint: 'use a storage path without commas' });
    }
  }
  return [`host=${target.host}`, `ca=${path.join(target.certDir, 'ca.pem')}`, `cert=${path.join(target.certDir, 'cert.pem')}`, `key=${path.join(target.certDir, 'key.pem')}`].join(',');
}

/** Creates the context, or updates it when one of that name exists. Returns what was done. */
export async function upsertContext(target: ContextTarget, env: NodeJS.ProcessEnv = process.env): Promise<'created' | 'updated'> {
  if (!CONTEXT_NAME.test(target.name)) throw new TmachineError(`"${target.name}" is not a valid docker context name`, { hint: 'use letters, digits, ".", "_", "-"' });
  const existing = (await docker(['context', 'ls', '--format', '{{.Name}}'], env)).split('\n').map((l) => l.trim());
  const verb = existing.includes(target.name) ? 'update' : 'create';
  await docker(['context', verb, target.name, '--description', target.description, '--docker', endpoint(target)], env);
  return verb === 'create' ? 'created' : 'updated';
}

/** Writes an archive of the context (TLS material included) that `docker context import` reads. */
export async function exportContext(target: ContextTarget, file: string): Promise<void> {
  const config = await fs.mkdtemp(path.join(os.tmpdir(), 'tmachine-context-'));
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: config };
    delete env['DOCKER_CONTEXT'];
    delete env['DOCKER_HOST'];
    await upsertContext(target, env);
    const out = path.resolve(file);
    await fs.rm(out, { force: true });
    await docker(['context', 'export', target.name, out], env);
    // It carries the client key: readable by its owner only.
    await fs.chmod(out, 0o600);
  } finally {
    await fs.rm(config, { recursive: true, force: true });
  }
}
