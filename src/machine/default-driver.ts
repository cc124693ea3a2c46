/** With no --driver: the docker driver when a local engine answers (or can be started), else an error. */
import { builtInDriverNames } from '../../drivers/registry.js';
import { TmachineError } from '../errors.js';
import fs from 'node:fs';

export async function chooseDefaultDriver(): Promise<string> {
  const sockets = [process.env['TMACHINE_DOCKER_HOST'], process.env['DOCKER_HOST'], 'unix:///var/run/docker.sock', 'unix:///var/tmp/tmachine-engine/docker.sock'];
  const hasLocalEngine = sockets.some((s) => s && (!s.startsWith('unix://') || fs.existsSync(s.slice('unix://'.length))));
  const canStartEngine = process.getuid?.() === 0 && ['/usr/sbin/dockerd', '/usr/bin/dockerd', '/usr/local/bin/dockerd'].some((p) => fs.existsSync(p));
  if (hasLocalEngine || canStartEngine) return 'docker';
  throw new TmachineError('no --driver given and no local Docker engine answers', {
    hint: `pass --driver with one of: ${builtInDriverNames().join(', ')}`,
  });
}
