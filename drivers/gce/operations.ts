/**
 * Waiting on Compute Engine operations. `operations.wait` answers when the operation is DONE
 * or after about two minutes (and may answer at once), so it is called in a loop with a
 * backoff and an overall deadline; never a sleep in place of the condition.
 */
import { DriverError, waitFor } from '../kit/index.js';
import { call, operationFailure, toDriverError, type GceClients, type Operation } from './client.js';

export interface OperationWait {
  /** What the operation does, for messages: "instances.insert tm-1 in europe-west1-b". */
  call: string;
  deadlineMs: number;
  signal?: AbortSignal;
}

/** Waits until the operation is DONE; throws the operation's error as one DriverError line. */
export async function waitOperation(clients: GceClients, started: Operation, wait: OperationWait): Promise<Operation> {
  const name = started.name;
  if (!name) throw new DriverError('failed', `gce ${wait.call}: the API answered without an operation name`);
  const zone = started.zone ? started.zone.split('/').pop() : undefined;
  let current = started;
  const done = await waitFor(
    async () => {
      if (String(current.status) === 'DONE') return current;
      const [answer] = zone
        ? await call(`zoneOperations.wait ${name}`, clients, () => clients.zoneOperations.wait({ project: clients.project, zone, operation: name }), wait.signal)
        : await call(`globalOperations.wait ${name}`, clients, () => clients.globalOperations.wait({ project: clients.project, operation: name }), wait.signal);
      current = answer;
      return String(current.status) === 'DONE' ? current : undefined;
    },
    { what: `gce ${wait.call} (operation ${name})`, deadlineMs: wait.deadlineMs, intervalMs: 500, maxIntervalMs: 5_000, ...(wait.signal ? { signal: wait.signal } : {}) },
  );
  const failure = operationFailure(done);
  if (failure) throw toDriverError(`${wait.call} (operation ${name})`, failure, clients);
  return done;
}
