import fs from 'node:fs/promises';
import path from 'node:path';
import { Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { TmachineError } from '../errors.js';
import type { EngineTls } from '../engine/client.js';
import type { MachineStatus } from '../machine/status.js';
import { dockerMachineState, dockerMachineVersion, lsItem } from '../cli/formats.js';
import { renderGoTemplate } from '../cli/go-template.js';
import { machineTls } from '../cli/machine-tls.js';
import { table } from '../ui/table.js';
import type { MachineRecord } from '../store/machine-record.js';
import type { Store } from '../store/store.js';

/** A machine as `ls` sees it: its record, or the reason its record cannot be read. */
type Entry = { name: string; record: MachineRecord } | { name: string; broken: string };

export default class Ls extends BaseCommand {
  static override summary = 'List machines';
  static override examples = [
    '<%= config.bin %> ls',
    '<%= config.bin %> ls --filter driver=docker --format "{{.Name}} {{.State}}"',
    '<%= config.bin %> ls --filter label=role=web --filter state=Running -q',
  ];
  static override flags = {
    quiet: Flags.boolean({ char: 'q', description: 'Names only (no state checks unless filtering on state)' }),
    filter: Flags.string({
      description: 'Filter: driver=, state=, name= (regex), label=KEY[=VALUE], swarm= (repeatable; same key: any matches)',
      multiple: true,
    }),
    format: Flags.string({
      char: 'f',
      description:
        'Go template over Docker Machine\'s fields: {{.Name}} {{.Active}} {{.ActiveHost}} {{.DriverName}} {{.State}} {{.URL}} {{.Swarm}} {{.DockerVersion}} {{.Error}} {{.ResponseTime}}',
    }),
    json: Flags.boolean({ description: 'JSON output' }),
    timeout: Flags.string({ char: 't', description: 'Seconds to wait for each state check', default: '10' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Ls);
    const timeoutSeconds = Number(flags.timeout);
    if (!/^\s*\d+(\.\d+)?\s*$/.test(flags.timeout) || !(timeoutSeconds > 0)) {
      throw new TmachineError(`--timeout must be a positive number of seconds, not "${flags.timeout}"`, { hint: 'e.g. --timeout 10' });
    }
    const filters = parseFilters(flags.filter ?? []);
    const store = await this.store();
    if (flags.quiet && filters.length === 0) {
      // Names only: no record needs reading (nor the schema loading), broken ones included.
      const names = await listMachineDirs(store);
      if (names.length > 0) this.print(names.join('\n'));
      return;
    }
    // One unreadable record must not hide the others: it is listed with its error.
    const entries: Entry[] = await Promise.all(
      (await listMachineDirs(store)).map(async (name): Promise<Entry> => {
        try {
          return { name, record: await store.load(name) };
        } catch (error) {
          return { name, broken: error instanceof TmachineError ? error.message : String(error) };
        }
      }),
    );
    const selected = entries.filter((e) => matchesStatic(e, filters));
    const needsState = !flags.quiet || filters.some((f) => f.key === 'state');
    if (!needsState) {
      if (selected.length > 0) this.print(selected.map((e) => e.name).join('\n'));
      return;
    }
    // State checks need the engine client and the drivers: loaded only when asked for (not for -q).
    const [{ default: pLimit }, { clientTls }, { machineStatus }] = await Promise.all([import('p-limit'), import('../engine/client.js'), import('../machine/status.js')]);
    const storeTls: EngineTls | undefined = await clientTls(store).catch(() => undefined);
    const limit = pLimit(16);
    let rows = await Promise.all(
      selected.map((e) =>
        limit(async (): Promise<{ status: MachineStatus; record?: MachineRecord }> => {
          if ('broken' in e) return { status: brokenStatus(e.name, e.broken) };
          const tls = (await machineTls(store, e.record)) ?? storeTls;
          return { status: await machineStatus(store, e.record, timeoutSeconds * 1000, tls), record: e.record };
        }),
      ),
    );
    rows = rows.filter((r) => matchesState(r.status, filters));
    if (flags.quiet) {
      if (rows.length > 0) this.print(rows.map((r) => r.status.name).join('\n'));
      return;
    }
    if (flags.json) return this.printJson(rows.map((r) => r.status));
    if (flags.format) {
      const template = flags.format.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
      if (rows.length > 0) this.print(rows.map((r) => renderGoTemplate(template, lsItem(r.status, r.record))).join('\n'));
      return;
    }
    this.print(
      table(
        ['NAME', 'ACTIVE', 'DRIVER', 'STATE', 'URL', 'SWARM', 'DOCKER', 'ERRORS'],
        rows.map(({ status: s }) => [s.name, s.active ? '*' : '-', s.driver, dockerMachineState(s.state), s.url, s.swarm, dockerMachineVersion(s.engineVersion), s.error]),
      ),
    );
  }
}

/** Every machine directory with a config.json, readable or not. */
async function listMachineDirs(store: Store): Promise<string[]> {
  const entries = await fs.readdir(store.machinesDir, { withFileTypes: true }).catch(() => []);
  const names: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const exists = await fs
      .stat(path.join(store.machinesDir, entry.name, 'config.json'))
      .then(() => true)
      .catch(() => false);
    if (exists) names.push(entry.name);
  }
  return names.sort();
}

function brokenStatus(name: string, error: string): MachineStatus {
  return { name, active: false, driver: '', state: 'error', url: '', swarm: '', engineVersion: '', error };
}

interface Filter {
  key: string;
  value: string;
}

function parseFilters(raw: string[]): Filter[] {
  return raw.map((f) => {
    const m = /^(driver|state|name|label|swarm)=(.*)$/i.exec(f);
    if (!m) throw new TmachineError(`unknown filter "${f}"`, { hint: 'use driver=, state=, name=, label= or swarm=' });
    return { key: m[1]!.toLowerCase(), value: m[2]! };
  });
}

/** Docker Machine's rule: filters with the same key are alternatives, different keys must all hold. */
function allGroups(filters: Filter[], keys: string[], test: (f: Filter) => boolean): boolean {
  for (const key of keys) {
    const group = filters.filter((f) => f.key === key);
    if (group.length > 0 && !group.some(test)) return false;
  }
  return true;
}

function matchesStatic(entry: Entry, filters: Filter[]): boolean {
  const record = 'record' in entry ? entry.record : undefined;
  return allGroups(filters, ['driver', 'name', 'label', 'swarm'], (f) => {
    if (f.key === 'name') return safeRegex(f.value).test(entry.name);
    if (!record) return false;
    if (f.key === 'driver') return record.driver.name.toLowerCase() === f.value.toLowerCase();
    if (f.key === 'swarm') return (record.swarm?.role ?? '') === f.value || (record.swarm?.cluster ?? '') === f.value;
    // label=KEY matches any value, label=KEY=VALUE that value.
    return record.engine.labels.some((l) => l === f.value || l.startsWith(`${f.value}=`));
  });
}

function safeRegex(source: string): RegExp {
  try {
    return new RegExp(source);
  } catch {
    throw new TmachineError(`name filter "${source}" is not a valid regular expression`, { hint: 'e.g. --filter name=^worker' });
  }
}

function matchesState(status: MachineStatus, filters: Filter[]): boolean {
  return allGroups(filters, ['state'], (f) => dockerMachineState(status.state).toLowerCase() === f.value.toLowerCase() || status.state === f.value.toLowerCase());
}
