/** Small TCP reachability checks (state checks, waiting for sshd) with bounded time. */
import net from 'node:net';

export function tcpAnswers(host: string, port: number, timeoutMs: number): Promise<{ ok: boolean; reason: string }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean, reason: string) => {
      socket.destroy();
      resolve({ ok, reason });
    };
    socket.setTimeout(timeoutMs, () => done(false, `no answer within ${Math.round(timeoutMs / 1000)}s`));
    socket.once('connect', () => done(true, 'connected'));
    socket.once('error', (error: NodeJS.ErrnoException) => done(false, error.code ?? error.message));
  });
}

/** Polls until host:port accepts a TCP connection or the deadline passes. */
export async function waitForTcp(host: string, port: number, deadlineMs: number): Promise<{ ok: boolean; reason: string }> {
  const end = Date.now() + deadlineMs;
  let delay = 100;
  let last = { ok: false, reason: 'not tried' };
  while (Date.now() < end) {
    last = await tcpAnswers(host, port, Math.max(100, Math.min(2_000, end - Date.now())));
    if (last.ok) return last;
    await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, end - Date.now()))));
    delay = Math.min(delay * 2, 1_000);
  }
  return last;
}

/** Resolves after `ms` (for retry backoff, never as a stand-in for waiting on a condition). */
export function backoff(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
