/**
 * The one Docker Engine API client factory (dockerode), for drivers and core alike. Not
 * re-exported by the kit's index, so importing the kit never loads dockerode.
 */
import Dockerode from 'dockerode';
import { DriverError } from './errors.js';

export interface EngineTls {
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
}

export interface EngineTarget {
  /** unix:///path or tcp://host:port */
  endpoint: string;
  /** Client certificate material; a tcp endpoint without it speaks plain HTTP. */
  tls?: EngineTls;
  timeoutMs?: number;
}

export function dockerEngine(target: EngineTarget): Dockerode {
  return new Dockerode(engineOptions(target));
}

/**
 * docker-modem merges these over defaults it reads from DOCKER_HOST & co. Every connection
 * field is set explicitly (undefined included) so the environment can never redirect a
 * client that was asked for a specific endpoint.
 */
export function engineOptions(target: EngineTarget): Dockerode.DockerOptions {
  const { endpoint, tls } = target;
  const blank: Dockerode.DockerOptions = {
    socketPath: undefined,
    host: undefined,
    port: undefined,
    protocol: undefined,
    ca: undefined,
    cert: undefined,
    key: undefined,
    ...(target.timeoutMs ? { timeout: target.timeoutMs } : {}),
  };
  if (endpoint.startsWith('unix://')) {
    const socketPath = endpoint.slice('unix://'.length);
    if (!socketPath.startsWith('/')) throw new DriverError('invalid-input', `invalid Docker endpoint "${endpoint}"`, { hint: 'use unix:///absolute/path' });
    return { ...blank, socketPath };
  }
  if (endpoint.startsWith('tcp://')) {
    let url: URL;
    try {
      url = new URL(endpoint.replace(/^tcp:/, 'http:'));
    } catch {
      throw new DriverError('invalid-input', `invalid Docker endpoint "${endpoint}"`, { hint: 'use tcp://HOST:PORT' });
    }
    const port = url.port || (tls ? '2376' : '2375');
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (!tls) return { ...blank, host, port, protocol: 'http' };
    return { ...blank, host, port, protocol: 'https', ca: tls.ca, cert: tls.cert, key: tls.key };
  }
  throw new DriverError('invalid-input', `unsupported Docker endpoint "${endpoint}"`, { hint: 'use unix:///path or tcp://host:port' });
}
