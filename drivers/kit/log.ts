/**
 * Debug lines from drivers. The kit imports nothing of the core, so the core installs the
 * sink (which redacts and honours --debug); until then debug lines go nowhere.
 */
type Sink = (scope: string, message: string) => void;

let sink: Sink = () => undefined;
const secretSinks: Array<(value: string) => void> = [];

export function setDebugSink(next: Sink): void {
  sink = next;
}

/** One --debug line (the core redacts registered secrets from it). */
export function debug(scope: string, message: string): void {
  sink(scope, message);
}

/** Secrets registered before the core installed its sink (a driver module's import time). */
const early: string[] = [];

export function setSecretSink(register: (value: string) => void): void {
  secretSinks.push(register);
  for (const value of early) register(value);
}

/** Registers a value (a cloud secret key, a token) that must never appear in any output. */
export function registerSecret(value: string | undefined | null): void {
  if (!value) return;
  if (secretSinks.length === 0) early.push(value);
  for (const register of secretSinks) register(value);
}
