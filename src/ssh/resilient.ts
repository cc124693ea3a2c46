/**
 * A RemoteHost that reconnects once when its SSH connection is lost mid-operation and
 * repeats that operation. Only for idempotent work (provisioning steps check before they
 * change anything); `tmachine ssh -- CMD` uses a plain connection and never repeats a command.
 */
import { debug } from '../ui/log.js';
import { SshSessionLostError, type SshConnection } from './connection.js';
import type { ExecOptions, ExecResult, RemoteHost, UploadOptions } from './types.js';

export class ReconnectingHost implements RemoteHost {
  constructor(
    private current: SshConnection,
    private readonly reconnect: () => Promise<SshConnection>,
  ) {}

  get label(): string {
    return this.current.label;
  }

  private async attempt<T>(operation: (connection: SshConnection) => Promise<T>): Promise<T> {
    try {
      return await operation(this.current);
    } catch (error) {
      if (!this.current.closed && !(error instanceof SshSessionLostError)) throw error;
      this.current.close();
      debug(`ssh ${this.label}`, `connection lost (${error instanceof Error ? error.message : String(error)}); reconnecting once`);
      this.current = await this.reconnect();
      return operation(this.current);
    }
  }

  exec(command: string, options?: ExecOptions): Promise<ExecResult> {
    return this.attempt((c) => c.exec(command, options));
  }
  run(command: string, options?: ExecOptions & { what?: string }): Promise<string> {
    return this.attempt((c) => c.run(command, options));
  }
  upload(localPath: string, remotePath: string, options?: UploadOptions): Promise<void> {
    return this.attempt((c) => c.upload(localPath, remotePath, options));
  }
  writeFile(remotePath: string, content: string | Buffer, options?: UploadOptions): Promise<void> {
    return this.attempt((c) => c.writeFile(remotePath, content, options));
  }
  download(remotePath: string, localPath: string): Promise<void> {
    return this.attempt((c) => c.download(remotePath, localPath));
  }
  close(): void {
    this.current.close();
  }
}
