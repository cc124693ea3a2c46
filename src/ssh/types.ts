/** The contract every part of tmachine uses to talk to a host. Implemented by ssh/connection.ts. */

export interface ExecOptions {
  /** Called with each chunk of remote stdout/stderr as it arrives. */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Written to the command's stdin, then stdin is closed. */
  stdin?: string | Buffer;
  /** Kill the command (close the channel) after this long; rejects with TmachineError. */
  timeoutMs?: number;
  /** Allocate a PTY (interactive use only). */
  pty?: boolean;
  /** Strings to hide in --debug output of this command (tokens passed on the command line). */
  secrets?: string[];
}

export interface ExecResult {
  code: number;
  /** Set when the remote process died of a signal. */
  signal?: string;
  stdout: string;
  stderr: string;
}

export interface UploadOptions {
  mode?: number;
  onProgress?: (transferred: number, total: number) => void;
}

/** A host reached over SSH. One connection per host, reused by every step. */
export interface RemoteHost {
  readonly label: string;
  /** Runs a command through the login user's shell; resolves with its exit code (never rejects on non-zero). */
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  /** Like exec, but a non-zero exit rejects with a TmachineError naming the step and stderr's last line. */
  run(command: string, options?: ExecOptions & { what?: string }): Promise<string>;
  /** SFTP upload to a temporary name in the same directory, then rename onto remotePath. */
  upload(localPath: string, remotePath: string, options?: UploadOptions): Promise<void>;
  /** Writes content to remotePath (temp name + rename). */
  writeFile(remotePath: string, content: string | Buffer, options?: UploadOptions): Promise<void>;
  download(remotePath: string, localPath: string): Promise<void>;
  close(): void;
}
