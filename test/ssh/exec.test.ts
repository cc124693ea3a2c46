import { createHash, randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { TmachineError } from '../../src/errors.js';
import { SshConnection, type Terminal } from '../../src/ssh/connection.js';
import { connectOptionsFor, startSshd, type TestSshd } from '../support/sshd.js';

let sshd: TestSshd;
let host: SshConnection;

beforeAll(async () => {
  sshd = await startSshd();
  host = await SshConnection.connect(connectOptionsFor(sshd));
});

afterAll(async () => {
  host?.close();
  await sshd?.stop();
});

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A terminal made of in-memory streams, collecting what the session prints. */
function fakeTerminal(): Terminal & { printed: () => string; printedErrors: () => string } {
  const input = new PassThrough();
  const output = new PassThrough();
  const errorOutput = new PassThrough();
  let printed = '';
  let printedErrors = '';
  output.on('data', (chunk: Buffer) => (printed += chunk.toString()));
  errorOutput.on('data', (chunk: Buffer) => (printedErrors += chunk.toString()));
  return { input, output, errorOutput, printed: () => printed, printedErrors: () => printedErrors };
}

describe('exec', () => {
  it.each([0, 3, 255])('passes exit code %i through without rejecting', async (code) => {
    const result = await host.exec(`exit ${code}`);
    expect(result.code).toBe(code);
  });

  it('reports a process killed by a signal as 128 + signal number', async () => {
    const result = await host.exec('kill -TERM $$');
    expect(result).toMatchObject({ code: 143, signal: 'SIGTERM' });
  });

  it('streams stdout chunks while the command is still running', async () => {
    const sawFirstLine = deferred();
    let finished = false;
    const running = host
      .exec('echo a; sleep 0.3; echo b', { onStdout: (chunk) => chunk.toString().includes('a') && sawFirstLine.resolve() })
      .then((result) => {
        finished = true;
        return result;
      });
    await sawFirstLine.promise;
    expect(finished).toBe(false);
    const result = await running;
    expect(result.stdout).toBe('a\nb\n');
    expect(result.code).toBe(0);
  });

  it('streams stderr chunks while the command is still running, kept apart from stdout', async () => {
    const sawFirstLine = deferred();
    let finished = false;
    const running = host
      .exec('echo e1 >&2; sleep 0.3; echo out; echo e2 >&2', {
        onStderr: (chunk) => chunk.toString().includes('e1') && sawFirstLine.resolve(),
      })
      .then((result) => {
        finished = true;
        return result;
      });
    await sawFirstLine.promise;
    expect(finished).toBe(false);
    const result = await running;
    expect(result.stderr).toBe('e1\ne2\n');
    expect(result.stdout).toBe('out\n');
  });

  it('pipes stdin to the command and closes it', async () => {
    expect((await host.exec('cat', { stdin: 'hello\n' })).stdout).toBe('hello\n');
    const payload = randomBytes(1024 * 1024);
    const result = await host.exec('sha256sum', { stdin: payload });
    expect(result.stdout.split(' ')[0]).toBe(createHash('sha256').update(payload).digest('hex'));
  });

  it('closes stdin when none is given, so commands reading it do not hang', async () => {
    expect((await host.exec('cat; echo done')).stdout).toBe('done\n');
  });

  it('stops a command at its timeout with a clear error, and the connection stays usable', async () => {
    const started = Date.now();
    const error = await host.exec('sleep 31.25', { timeoutMs: 500 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TmachineError);
    expect((error as TmachineError).message).toBe('command on testhost timed out after 0.5s');
    expect(Date.now() - started).toBeLessThan(2_000);
    // The remote process was killed, not left behind.
    const giveUpAt = Date.now() + 5_000;
    let left = '';
    do {
      left = (await host.exec('pgrep -f "sleep 31[.]25" || true')).stdout.trim();
    } while (left !== '' && Date.now() < giveUpAt);
    expect(left).toBe('');
    expect((await host.exec('echo still here')).stdout).toBe('still here\n');
  });

  it('rejects a running command clearly when the connection drops, and reports itself closed', async () => {
    const doomed = await SshConnection.connect(connectOptionsFor(sshd));
    // $PPID is this connection's sshd process: killing it is what a host going away looks like.
    const error = await doomed.exec('sleep 0.1; kill -9 $PPID; sleep 5').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TmachineError);
    expect((error as TmachineError).message).toMatch(/^the SSH connection to testhost was lost while running sleep/);
    expect(doomed.closed).toBe(true);
    await expect(doomed.exec('true')).rejects.toThrow(/^the SSH connection to testhost was lost/);
  });

  it('runs more commands at once than sshd allows sessions per connection', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => host.exec(`sleep 0.2; echo ${i}`)),
    );
    expect(results.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
  });
});

describe('run', () => {
  it('returns stdout on success', async () => {
    expect(await host.run('echo ok')).toBe('ok\n');
  });

  it('rejects on non-zero exit naming the step and the last stderr line', async () => {
    const error = await host
      .run('echo "reading lists" >&2; echo "E: Unable to locate package docker-ce" >&2; echo >&2; exit 3', {
        what: 'install docker',
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TmachineError);
    expect((error as TmachineError).userLine).toBe(
      'install docker failed on testhost (exit 3): E: Unable to locate package docker-ce',
    );
  });

  it("names the command's first word when no step name is given", async () => {
    await expect(host.run('ls /no/such/dir')).rejects.toThrow(/^ls failed on testhost \(exit 2\): .*No such file or directory/);
  });
});

describe('--debug logging', () => {
  it('logs every command with its secrets hidden', async () => {
    const previous = process.env['TMACHINE_DEBUG'];
    process.env['TMACHINE_DEBUG'] = '1';
    const written: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(chunk.toString());
      return true;
    });
    try {
      const token = 'SECRET-join-token-4711';
      const result = await host.exec(`echo ${token} >/dev/null`, { secrets: [token] });
      expect(result.code).toBe(0);
    } finally {
      spy.mockRestore();
      if (previous === undefined) delete process.env['TMACHINE_DEBUG'];
      else process.env['TMACHINE_DEBUG'] = previous;
    }
    const log = written.join('');
    expect(log).toContain('[debug ssh testhost] $ echo *** >/dev/null');
    expect(log).not.toContain('4711');
  });
});

describe('terminal sessions', () => {
  it('execInteractive streams to the terminal and passes the exit code through', async () => {
    const terminal = fakeTerminal();
    const code = await host.execInteractive('echo out; echo err >&2; exit 4', { terminal });
    expect(code).toBe(4);
    expect(terminal.printed()).toBe('out\n');
    expect(terminal.printedErrors()).toBe('err\n');
  });

  it('execInteractive forwards the local stdin', async () => {
    const terminal = fakeTerminal();
    (terminal.input as PassThrough).end('piped in\n');
    const code = await host.execInteractive('cat', { terminal });
    expect(code).toBe(0);
    expect(terminal.printed()).toBe('piped in\n');
  });

  it('interactive opens a shell on a PTY and resolves with its exit code', async () => {
    const terminal = fakeTerminal();
    (terminal.input as PassThrough).write('tty >/dev/null && echo "on a tty $((6 * 7))"; exit 7\n');
    const code = await host.interactive(terminal);
    expect(code).toBe(7);
    expect(terminal.printed()).toContain('on a tty 42');
  });
});

describe('exit status of fast commands', () => {
  // Regression: the exit-status of a command that finishes within one TCP read was lost
  // (the listener came after an await), about one run in six with five parallel commands.
  it('is never lost when many fast commands run at once on fresh connections', async () => {
    for (let round = 0; round < 15; round++) {
      const connection = await SshConnection.connect(connectOptionsFor(sshd));
      try {
        const results = await Promise.all(Array.from({ length: 6 }, (_, i) => connection.exec(`echo ${i}; exit ${i}`)));
        expect(results.map((r) => r.code)).toEqual([0, 1, 2, 3, 4, 5]);
      } finally {
        connection.close();
      }
    }
  });
});
