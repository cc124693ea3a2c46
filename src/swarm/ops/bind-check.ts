/**
 * Before a stack is handed to the swarm: every bind-mount source of each service must exist
 * on every node the service's placement allows, or its tasks would fail there one by one
 * ("invalid mount config: bind source path does not exist"). A missing one is refused in one
 * line that names the service, the node and the path.
 */
import { TmachineError } from '../../errors.js';
import { connectMachine } from '../../machine/connect.js';
import type { Store } from '../../store/store.js';
import { shellQuote } from '../../../provision/os.js';
import type { Member } from '../engines.js';
import { listNodes, type SwarmNode } from '../membership.js';

export interface ServiceBinds {
  service: string;
  sources: string[];
  constraints: string[];
}

type StackDoc = { services?: Record<string, { volumes?: unknown[]; deploy?: { placement?: { constraints?: unknown[] } } } | null> } | null;

/** Absolute bind sources per service (short `SRC:DST[:opts]` and long `type: bind` syntax). */
export function stackBinds(doc: unknown): ServiceBinds[] {
  const services = (doc as StackDoc)?.services ?? {};
  const out: ServiceBinds[] = [];
  for (const [service, spec] of Object.entries(services)) {
    const sources: string[] = [];
    for (const v of spec?.volumes ?? []) {
      if (typeof v === 'string') {
        const source = v.split(':')[0]!;
        if (source.startsWith('/')) sources.push(source);
      } else if (v && typeof v === 'object') {
        const long = v as { type?: string; source?: string };
        if (long.type === 'bind' && typeof long.source === 'string' && long.source.startsWith('/')) sources.push(long.source);
      }
    }
    const constraints = (spec?.deploy?.placement?.constraints ?? []).filter((c): c is string => typeof c === 'string');
    if (sources.length > 0) out.push({ service, sources: [...new Set(sources)], constraints });
  }
  return out;
}

/** Whether a node satisfies one placement constraint; attributes tmachine cannot see count as met. */
function satisfies(node: SwarmNode, constraint: string): boolean {
  const m = /^\s*([\w.-]+)\s*(==|!=)\s*(.+?)\s*$/.exec(constraint);
  if (!m) return true;
  const [, key, op, wanted] = m as unknown as [string, string, string, string];
  let actual: string | undefined;
  if (key === 'node.hostname') actual = node.Description?.Hostname;
  else if (key === 'node.role') actual = node.Spec.Role;
  else if (key === 'node.id') actual = node.ID;
  else if (key.startsWith('node.labels.')) actual = node.Spec.Labels?.[key.slice('node.labels.'.length)];
  else return true;
  return op === '==' ? actual === wanted : actual !== wanted;
}

export async function checkBindSources(store: Store, manager: Member, members: Member[], binds: ServiceBinds[], stack: string): Promise<void> {
  if (binds.length === 0) return;
  const nodes = (await listNodes(manager.docker)).filter((n) => n.Status?.State === 'ready' && n.Spec.Availability === 'active');
  const machineOf = (n: SwarmNode) => members.find((m) => m.record.swarm?.nodeId === n.ID) ?? members.find((m) => m.record.name === n.Description?.Hostname);
  // Per machine, the paths to look for, and which service wants each.
  const wanted = new Map<Member, Map<string, string>>();
  for (const b of binds) {
    for (const n of nodes.filter((node) => b.constraints.every((c) => satisfies(node, c)))) {
      const m = machineOf(n);
      if (!m) continue;
      const paths = wanted.get(m) ?? new Map<string, string>();
      for (const p of b.sources) if (!paths.has(p)) paths.set(p, b.service);
      wanted.set(m, paths);
    }
  }
  const missing: Array<{ service: string; machine: string; path: string }> = [];
  await Promise.all(
    [...wanted].map(async ([m, paths]) => {
      const conn = await connectMachine(store, m.record);
      try {
        const list = [...paths.keys()].map((p) => shellQuote(p)).join(' ');
        const out = await conn.run(`for p in ${list}; do [ -e "$p" ] || echo "$p"; done`, { what: 'checking bind-mount sources' });
        for (const p of out.split('\n').filter(Boolean)) missing.push({ service: paths.get(p)!, machine: m.record.name, path: p });
      } finally {
        conn.close();
      }
    }),
  );
  if (missing.length === 0) return;
  missing.sort((a, b) => a.service.localeCompare(b.service) || a.machine.localeCompare(b.machine));
  const first = missing[0]!;
  throw new TmachineError(
    `service ${first.service} of stack ${stack} bind-mounts ${first.path}, which is missing on ${first.machine}${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''}`,
    { hint: `create it there (\`tmachine ssh ${first.machine} sudo mkdir -p ${first.path}\`), or constrain the service's placement` },
  );
}
