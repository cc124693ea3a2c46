/**
 * A RemoteHost over `docker exec`, for tests that need a real host before (or without) SSH.
 * Commands run as the login user through bash, like SSH's `$SHELL -c`; uploads stream the file
 * into `cat` as that user (so permissions are the user's, as with SFTP) and rename it into place.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { TmachineError } from '../../src/errors.js';
import type { ExecOptions, ExecResult, RemoteHost, UploadOptions } from '../../src/ssh/types.js';

export interface DockerExecHostOptions {
  label: string;
  container: string;
  user: string;
  /** Environment for the docker CLI (DOCKER_HOST). */
  env?: NodeJS.ProcessEnv;
}

export class DockerExecHost implements RemoteHost {
  readonly label: string;

  constructor(private readonly options: DockerExecHostOptions) {
    this.label = options.label;
  }

  exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const input = options.stdin === undefined ? undefined : Buffer.from(options.stdin);
    return this.docker(['bash', '-c', command], input === undefined ? undefined : (stdin) => stdin.end(input), options);
  }

  async run(command: string, options: ExecOptions & { what?: string } = {}): Promise<string> {
    const result = await this.exec(command, options);
    if (result.code !== 0) {
      const last = result.stderr.trim().split('\n').pop() ?? '';
      throw new TmachineError(`${options.what ?? command} failed on ${this.label}: ${last || `exit code ${result.code}`}`);
    }
    return result.stdout;
  }

  async upload(localPath: string, remotePath: string, options: UploadOptions = {}): Promise<void> {
    const total = (await fs.promises.stat(localPath)).size;
    let transferred = 0;
    await this.put(remotePath, options.mode, (stdin) => {
      const source = fs.createReadStream(localPath);
      source.on('data', (chunk) => {
        transferred += chunk.length;
        options.onProgress?.(transferred, total);
      });
      source.pipe(stdin);
    });
  }

  async writeFile(remotePath: string, content: string | Buffer, options: UploadOptions = {}): Promise<void> {
    await this.put(remotePath, options.mode, (stdin) => stdin.end(Buffer.from(content)));
  }

  async download(remotePath: string, localPath: string): Promise<void> {
    const result = await this.docker(['cat', remotePath], undefined, {}, true);
    if (result.code !== 0) throw new TmachineError(`download of ${remotePath} from ${this.label} failed: ${result.stderr.trim()}`);
    await fs.promises.writeFile(localPath, result.raw);
  }

  close(): void {}

  private async put(remotePath: string, mode: number | undefined, feed: (stdin: NodeJS.WritableStream) => void): Promise<void> {
    const temp = `${remotePath}.tmp-${process.pid}-${Date.now()}`;
    const chmod = mode === undefined ? '' : `chmod ${mode.toString(8)} "$1" && `;
    const script = `umask 077 && cat > "$1" && ${chmod}mv -f "$1" "$2"`;
    const result = await this.docker(['sh', '-c', script, 'sh', temp, remotePath], feed, {});
    if (result.code !== 0) throw new TmachineError(`upload to ${remotePath} on ${this.label} failed: ${result.stderr.trim()}`);
  }

  private docker(
    argv: string[],
    feed: ((stdin: NodeJS.WritableStream) => void) | undefined,
    options: ExecOptions,
    keepRaw = false,
  ): Promise<ExecResult & { raw: Buffer }> {
    const args = ['exec', ...(feed ? ['-i'] : []), '-u', this.options.user, this.options.container, ...argv];
    return new Promise((resolve, reject) => {
      const child = spawn('docker', args, { env: this.options.env ?? process.env, stdio: [feed ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout!.on('data', (chunk: Buffer) => {
        out.push(chunk);
        options.onStdout?.(chunk);
      });
      child.stderr!.on('data', (chunk: Buffer) => {
        err.push(chunk);
        options.onStderr?.(chunk);
      });
      const timer = options.timeoutMs
        ? setTimeout(() => {
            child.kill('SIGKILL');
            reject(new TmachineError(`command timed out after ${options.timeoutMs} ms on ${this.label}`));
          }, options.timeoutMs)
        : undefined;
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        const raw = Buffer.concat(out);
        resolve({
          code: code ?? 255,
          ...(signal ? { signal } : {}),
          stdout: keepRaw ? '' : raw.toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          raw,
        });
      });
      if (feed && child.stdin) feed(child.stdin);
    });
  }
}
