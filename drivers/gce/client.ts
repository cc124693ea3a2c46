/**
 * The Compute Engine clients, their credentials, and Google's errors turned into one line.
 *
 * Credentials: a static access token from $GOOGLE_OAUTH_ACCESS_TOKEN when set (the only
 * source with --gce-endpoint, so a test or emulator endpoint never makes tmachine fetch a
 * token from anywhere), else Application Default Credentials: $GOOGLE_APPLICATION_CREDENTIALS,
 * gcloud's ADC file, or the metadata server when tmachine runs on a GCE VM.
 */
import path from 'node:path';
import {
  FirewallsClient,
  GlobalOperationsClient,
  ImagesClient,
  InstancesClient,
  ZoneOperationsClient,
  ZonesClient,
  type protos,
} from '@google-cloud/compute';
import { Compute, GoogleAuth, OAuth2Client, type AuthClient } from 'google-auth-library';
import { backoff, debug, DriverError, registerSecret, type DriverErrorKind } from '../kit/index.js';

export type Operation = protos.google.cloud.compute.v1.IOperation;
export type Instance = protos.google.cloud.compute.v1.IInstance;
export type Firewall = protos.google.cloud.compute.v1.IFirewall;

export const ACCESS_TOKEN_ENV = 'GOOGLE_OAUTH_ACCESS_TOKEN';

export interface GceClients {
  project: string;
  /** Where the calls go, for messages ("compute.googleapis.com", "http://127.0.0.1:8080"). */
  endpoint: string;
  /** The token came from the metadata server: tmachine runs on a GCE VM. */
  onGceVm: boolean;
  instances: InstancesClient;
  zoneOperations: ZoneOperationsClient;
  globalOperations: GlobalOperationsClient;
  firewalls: FirewallsClient;
  images: ImagesClient;
  zones: ZonesClient;
}

export interface ClientSettings {
  project?: string;
  endpoint?: string;
}

/** The client options: the one place that knows how to reach a non-Google endpoint. */
type ClientOptions = NonNullable<ConstructorParameters<typeof InstancesClient>[0]>;

function clientOptions(endpoint: string | undefined, authClient: AuthClient): ClientOptions {
  if (!endpoint) return { authClient, fallback: true };
  const url = new URL(endpoint);
  const protocol = url.protocol.replace(/:$/, '');
  const port = url.port ? Number(url.port) : protocol === 'http' ? 80 : 443;
  return { apiEndpoint: url.hostname, port, protocol, fallback: true, authClient };
}

export async function openClients(settings: ClientSettings): Promise<GceClients> {
  const token = process.env[ACCESS_TOKEN_ENV];
  let authClient: AuthClient;
  let project = settings.project ?? process.env['GOOGLE_CLOUD_PROJECT'] ?? process.env['CLOUDSDK_CORE_PROJECT'];
  let onGceVm = false;
  if (token) {
    registerSecret(token);
    const oauth = new OAuth2Client();
    // A token without a refresh path: it is used until it expires, never refreshed.
    oauth.setCredentials({ access_token: token, expiry_date: Date.now() + 3_600_000 });
    authClient = oauth;
  } else if (settings.endpoint) {
    throw new DriverError('auth', `gce: no credentials for ${settings.endpoint}: $${ACCESS_TOKEN_ENV} is not set`, {
      hint: `with --gce-endpoint tmachine sends the access token in $${ACCESS_TOKEN_ENV} and never fetches one`,
    });
  } else {
    // The metadata server counts only where this computer is a GCE VM by its local signs
    // (BIOS vendor, NIC address): elsewhere Google's library would probe 169.254.169.254 and
    // metadata.google.internal, a network round trip for an answer known here.
    process.env[METADATA_DETECTION_ENV] ??= 'bios-only';
    const auth = new GoogleAuth({ scopes: ['https://www.googleapis.com/auth/cloud-platform'] });
    try {
      authClient = await auth.getClient();
    } catch (error) {
      const what = NO_ADC.test(firstLine(error)) ? `none found (looked in: ${adcPlaces().join('; ')})` : firstLine(error);
      throw new DriverError('auth', `gce: Application Default Credentials: ${what}`, {
        hint: 'run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file',
        cause: error,
      });
    }
    onGceVm = authClient instanceof Compute;
    if (!project) project = (await auth.getProjectId().catch(() => undefined)) ?? undefined;
  }
  if (!project) {
    throw new DriverError('invalid-input', 'gce: no project given', {
      hint: 'pass --gce-project, set GOOGLE_CLOUD_PROJECT, or use credentials that name a project',
    });
  }
  const options = clientOptions(settings.endpoint, authClient);
  return {
    project,
    endpoint: settings.endpoint ?? 'compute.googleapis.com',
    onGceVm,
    instances: new InstancesClient(options),
    zoneOperations: new ZoneOperationsClient(options),
    globalOperations: new GlobalOperationsClient(options),
    firewalls: new FirewallsClient(options),
    images: new ImagesClient(options),
    zones: new ZonesClient(options),
  };
}

/** What Google said, from an SDK error (HTTP) or a finished operation's `error`. */
export interface GoogleFailure {
  status?: number;
  /** Error reasons and codes: "QUOTA_EXCEEDED", "notFound", "ZONE_RESOURCE_POOL_EXHAUSTED". */
  reasons: string[];
  message: string;
}

const RAW_PAYLOAD = Symbol.for('google-gax.rawHttpResponsePayload');

export function googleFailure(error: unknown): GoogleFailure {
  const e = (error ?? {}) as { httpStatusCode?: number; code?: number | string; message?: string; reason?: string; cause?: unknown; [RAW_PAYLOAD]?: unknown };
  const reasons: string[] = [];
  if (typeof e.reason === 'string') reasons.push(e.reason);
  let message = e.message ?? String(error);
  let status = typeof e.httpStatusCode === 'number' ? e.httpStatusCode : undefined;
  // The REST transport keeps Google's JSON body; its errors[].reason says what happened.
  for (const raw of [e[RAW_PAYLOAD], e.cause instanceof Error ? e.cause.message : undefined]) {
    const body = parseJson(raw);
    const inner = body?.['error'] as { code?: number; message?: string; errors?: Array<{ reason?: string }>; details?: Array<{ reason?: string }> } | undefined;
    if (!inner) continue;
    if (inner.message) message = inner.message;
    if (typeof inner.code === 'number') status ??= inner.code;
    for (const item of inner.errors ?? []) if (item.reason) reasons.push(item.reason);
    for (const item of inner.details ?? []) if (item.reason) reasons.push(item.reason);
    break;
  }
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string') reasons.push(code);
  return { ...(status !== undefined ? { status } : {}), reasons, message: firstLine(message) };
}

export function operationFailure(op: Operation): GoogleFailure | undefined {
  const errors = op.error?.errors ?? [];
  if (errors.length === 0) return undefined;
  return {
    ...(op.httpErrorStatusCode ? { status: Number(op.httpErrorStatusCode) } : {}),
    reasons: errors.map((x) => x.code ?? '').filter(Boolean),
    message: errors.map((x) => (x.code ? `${x.code}: ${x.message ?? ''}` : (x.message ?? ''))).join('; '),
  };
}

const CAPACITY = ['ZONE_RESOURCE_POOL_EXHAUSTED', 'ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS', 'VM_MIN_COUNT_NOT_REACHED', 'insufficientCapacity', 'INSUFFICIENT_CAPACITY'];
const QUOTA = ['QUOTA_EXCEEDED', 'quotaExceeded'];
const SCOPES = ['ACCESS_TOKEN_SCOPE_INSUFFICIENT', 'insufficientPermissions'];

export function isCapacity(f: GoogleFailure): boolean {
  return f.reasons.some((r) => CAPACITY.includes(r));
}

export function isNotFound(error: unknown): boolean {
  const f = googleFailure(error);
  return f.status === 404 || f.reasons.includes('notFound');
}

function kindOf(f: GoogleFailure): DriverErrorKind {
  if (isCapacity(f)) return 'capacity';
  if (f.reasons.some((r) => QUOTA.includes(r))) return 'quota';
  if (f.status === 401 || f.status === 403) return 'auth';
  if (f.status === 404 || f.reasons.includes('notFound')) return 'not-found';
  if (f.status === 409 || f.reasons.includes('alreadyExists')) return 'already-exists';
  if (f.status === 400) return 'invalid-input';
  if (f.reasons.some((r) => ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EHOSTUNREACH'].includes(r))) return 'unreachable';
  return 'failed';
}

function hintFor(f: GoogleFailure, clients: Pick<GceClients, 'onGceVm' | 'endpoint'> | undefined): string | undefined {
  const scopes = f.reasons.some((r) => SCOPES.includes(r)) || /insufficient authentication scopes/i.test(f.message);
  if (scopes) {
    return `${clients?.onGceVm === false ? '' : 'tmachine runs with the VM\'s service account: '}give the VM "Allow full access to all Cloud APIs" (stop it, edit its API access scopes), or use a service account with the Compute Instance Admin and Compute Security Admin roles`;
  }
  if (f.status === 401) return 'the access token was refused; run `gcloud auth application-default login` again';
  if (f.status === 403 && !f.reasons.some((r) => QUOTA.includes(r))) return 'the account needs the Compute Instance Admin (v1) and Compute Security Admin roles in this project';
  if (f.reasons.some((r) => QUOTA.includes(r))) return 'raise the quota in the console (IAM & Admin > Quotas), or use a smaller --gce-machine-type or another region';
  if (kindOf(f) === 'unreachable') return `check that ${clients?.endpoint ?? 'the endpoint'} answers`;
  return undefined;
}

/** The one line for a failed call: "gce instances.insert: Quota 'CPUS' exceeded." */
export function toDriverError(call: string, failure: GoogleFailure, clients?: Pick<GceClients, 'onGceVm' | 'endpoint'>, cause?: unknown): DriverError {
  const hint = hintFor(failure, clients);
  return new DriverError(kindOf(failure), `gce ${call}: ${failure.message}`, { ...(hint ? { hint } : {}), ...(cause !== undefined ? { cause } : {}) });
}

interface Cancellable<T> extends Promise<T> {
  cancel?: () => void;
}

/**
 * One API call: throttling (429) and Google's transient 5xx answers are retried with backoff
 * (inserts carry a requestId, so a retry makes nothing twice); Ctrl-C cancels the call in
 * flight; any other failure is one DriverError naming the call.
 */
export async function call<T>(name: string, clients: Pick<GceClients, 'onGceVm' | 'endpoint'>, run: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  let pause = 1_000;
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw interrupted(signal);
    debug('gce', `${name} (attempt ${attempt})`);
    try {
      return await abortable(run() as Cancellable<T>, signal);
    } catch (error) {
      if (error instanceof DriverError) throw error;
      const failure = googleFailure(error);
      const transient = failure.status === 429 || failure.reasons.includes('rateLimitExceeded') || ((failure.status === 500 || failure.status === 502 || failure.status === 503) && !isCapacity(failure));
      if (transient && attempt < 6) {
        debug('gce', `${name}: ${failure.message}; retrying in ${pause}ms`);
        await backoff(pause, signal);
        pause = Math.min(pause * 2, 16_000);
        continue;
      }
      throw toDriverError(name, failure, clients, error);
    }
  }
}

function abortable<T>(promise: Cancellable<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.cancel?.();
      reject(interrupted(signal));
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

export function interrupted(signal: AbortSignal): DriverError {
  const reason: unknown = signal.reason;
  return new DriverError('interrupted', reason instanceof Error ? reason.message : 'interrupted');
}

function parseJson(raw: unknown): Record<string, unknown> | undefined {
  if (raw instanceof Uint8Array) raw = Buffer.from(raw).toString('utf8');
  if (raw && typeof raw === 'object') return raw as Record<string, unknown>;
  if (typeof raw !== 'string' || !raw.trim().startsWith('{')) return undefined;
  try {
    return JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

const METADATA_DETECTION_ENV = 'METADATA_SERVER_DETECTION';
/** google-auth-library's words when no source of Application Default Credentials has any. */
const NO_ADC = /^Could not load the default credentials/;

/** Where Application Default Credentials are looked for, in order, as google-auth-library does. */
function adcPlaces(): string[] {
  const home = process.env['HOME'];
  const configDir = process.env['CLOUDSDK_CONFIG'] ?? (home ? path.join(home, '.config', 'gcloud') : undefined);
  const detection = process.env[METADATA_DETECTION_ENV];
  return [
    '$GOOGLE_APPLICATION_CREDENTIALS (not set)',
    configDir ? `${path.join(configDir, 'application_default_credentials.json')} (no such file)` : "gcloud's ADC file (no $HOME or $CLOUDSDK_CONFIG)",
    detection === 'bios-only' ? 'the GCE metadata server (this computer is not a GCE VM)' : `the GCE metadata server (not available${detection ? `, ${METADATA_DETECTION_ENV}=${detection}` : ''})`,
  ];
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0] ?? text;
}
