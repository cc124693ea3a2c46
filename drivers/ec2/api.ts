/**
 * The AWS clients (EC2 and SSM) and the one call path every API request takes: client
 * options live here only (region, endpoint, profile, credentials, retries), each call is a
 * --debug line, and each failure becomes one DriverError line naming the API call.
 */
import os from 'node:os';
import path from 'node:path';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { DriverError, debug, registerSecret, type DriverErrorKind } from '../kit/index.js';
import type { Ec2Options } from './definition.js';

export const FALLBACK_REGION = 'us-east-1';

export interface Ec2Api {
  region: string;
  ec2: EC2Client;
  ssm: SSMClient;
  /** Sends one command through the EC2 (or SSM) client, mapping failures to a DriverError. */
  call<Output>(name: string, send: () => Promise<Output>): Promise<Output>;
  close(): void;
}

/** The client options, in the one place they are made (CLI flags, profile, endpoint, retries). */
function clientConfig(options: Ec2Options, region: string | undefined) {
  for (const secret of [options.secretKey, options.sessionToken, options.accessKey]) registerSecret(secret);
  return {
    ...(region ? { region } : {}),
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.profile ? { profile: options.profile } : {}),
    ...(options.accessKey && options.secretKey
      ? { credentials: { accessKeyId: options.accessKey, secretAccessKey: options.secretKey, ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}) } }
      : {}),
    maxAttempts: options.retries + 1,
  };
}

/** The region: the flag (or AWS_DEFAULT_REGION), else the SDK's own lookup (AWS_REGION, the profile), else us-east-1. */
export async function resolveRegion(options: Ec2Options): Promise<string> {
  if (options.region) return options.region;
  const probe = new EC2Client(clientConfig(options, undefined));
  try {
    return await probe.config.region();
  } catch {
    return FALLBACK_REGION;
  } finally {
    probe.destroy();
  }
}

export function openApi(options: Ec2Options, region: string): Ec2Api {
  const config = clientConfig(options, region);
  const ec2 = new EC2Client(config);
  const ssm = new SSMClient(config);
  return {
    region,
    ec2,
    ssm,
    async call<Output>(name: string, send: () => Promise<Output>): Promise<Output> {
      debug('ec2', `${name} (${region}${options.endpoint ? `, ${options.endpoint}` : ''})`);
      try {
        return await send();
      } catch (error) {
        const mapped = apiError(name, error, options, region);
        debug('ec2', `${name} failed: ${mapped.message}`);
        throw mapped;
      }
    },
    close() {
      ec2.destroy();
      ssm.destroy();
    },
  };
}

/** The code EC2/SSM answered (the SDK's exception name), or undefined for a non-service failure. */
export function errorCode(error: unknown): string | undefined {
  if (error instanceof DriverError) return (error.cause as { name?: string } | undefined)?.name;
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e && typeof e === 'object' && e.$metadata?.httpStatusCode !== undefined ? e.name : undefined;
}

function oneLine(text: string): string {
  return text
    .replace(/Encoded authorization failure message: \S+/, '')
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/\.$/, '');
}

function credentialChainLooked(options: Ec2Options): string {
  const home = os.homedir();
  const profile = options.profile ?? process.env['AWS_PROFILE'] ?? 'default';
  const credentials = process.env['AWS_SHARED_CREDENTIALS_FILE'] ?? path.join(home, '.aws', 'credentials');
  const config = process.env['AWS_CONFIG_FILE'] ?? path.join(home, '.aws', 'config');
  const imds = process.env['AWS_EC2_METADATA_DISABLED'] === 'true' ? 'instance metadata (disabled by AWS_EC2_METADATA_DISABLED)' : 'container and instance metadata';
  return `environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), profile "${profile}" in ${credentials} and ${config} (keys, SSO, process, web identity), ${imds}`;
}

function apiError(call: string, error: unknown, options: Ec2Options, region: string): DriverError {
  if (error instanceof DriverError) return error;
  const e = error as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } };
  const name = e?.name ?? 'Error';
  const message = oneLine(String(e?.message ?? error));
  const service = call.startsWith('ssm:') ? 'SSM' : 'EC2';
  const api = `${service} ${call.replace(/^ssm:/, '')}`;
  const make = (kind: DriverErrorKind, text: string, hint?: string) => new DriverError(kind, `${api}: ${text}`, { ...(hint ? { hint } : {}), cause: error });

  if (name === 'CredentialsProviderError' || /Could not load credentials/.test(message)) {
    return make('auth', `no AWS credentials found (looked in: ${credentialChainLooked(options)})`, 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, run `aws configure`, or pass --ec2-profile');
  }
  if (e?.$metadata?.httpStatusCode === undefined) {
    // Not an answer from the service: the endpoint did not answer, or the request never left.
    const code = e?.code ?? name;
    const where = options.endpoint ?? `the ${region} endpoint`;
    if (/ECONNREFUSED|ENOTFOUND|ETIMEDOUT|ECONNRESET|EHOSTUNREACH|TimeoutError/.test(`${code} ${message}`)) {
      return make('unreachable', `${where} did not answer (${code})`, 'check --ec2-endpoint, --ec2-region and the network');
    }
    if (name === 'AbortError') return make('interrupted', 'interrupted');
    return make('failed', message);
  }
  const tail = `(${name})`;
  switch (name) {
    case 'UnauthorizedOperation':
    case 'AccessDeniedException':
    case 'AccessDenied': {
      const action = /perform: ([\w-]+:\w+)/.exec(message)?.[1] ?? `${service.toLowerCase()}:${call.replace(/^ssm:/, '')}`;
      return make('auth', `not authorized to call ${action} ${tail}`, `allow ${action} in the IAM policy of these credentials`);
    }
    case 'AuthFailure':
    case 'InvalidClientTokenId':
    case 'UnrecognizedClientException':
    case 'SignatureDoesNotMatch':
    case 'ExpiredToken':
    case 'RequestExpired':
      return make('auth', `the credentials were refused: ${message} ${tail}`, 'check the AWS credentials and the clock of this computer');
    case 'InvalidAMIID.NotFound':
    case 'InvalidAMIID.Unavailable':
      return make('not-found', `the image does not exist in ${region}: ${message} ${tail}`, 'image ids differ per region: check --ec2-ami and --ec2-region');
    case 'InvalidAMIID.Malformed':
      return make('invalid-input', `${message} ${tail}`, 'check --ec2-ami');
    case 'ParameterNotFound':
      return make('not-found', `the image parameter does not exist in ${region} ${tail}`, 'check --ec2-image-parameter and --ec2-region');
    case 'InsufficientInstanceCapacity':
    case 'InsufficientHostCapacity':
    case 'InsufficientReservedInstanceCapacity':
    case 'SpotMaxPriceTooLow':
      return make('capacity', `${message} ${tail}`);
    case 'InstanceLimitExceeded':
    case 'VcpuLimitExceeded':
    case 'MaxSpotInstanceCountExceeded':
    case 'InsufficientFreeAddressesInSubnet':
      return make('quota', `${message} ${tail}`, 'ask AWS for a higher limit, or use another region');
    case 'RequestLimitExceeded':
    case 'ThrottlingException':
    case 'Throttling':
      return make('failed', `still throttled after ${options.retries} retries ${tail}`, 'wait a minute and run the command again, or raise --ec2-retries');
    case 'InvalidInstanceType':
      return make('invalid-input', `${message} ${tail}`, 'check --ec2-instance-type');
    default:
      if (name.endsWith('.NotFound')) return make('not-found', `${message} ${tail}`);
      if (name.endsWith('.Duplicate')) return make('already-exists', `${message} ${tail}`);
      if (/^(Invalid|Missing|Unsupported|IdempotentParameterMismatch)/.test(name)) return make('invalid-input', `${message} ${tail}`);
      return make('failed', `${message} ${tail}`);
  }
}
