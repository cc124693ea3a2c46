import { Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { TmachineError } from '../errors.js';
import type { EngineTls } from '../engine/client.js';
import type { MachineStatus } from '../machine/status.js';
import { formatTemplate, table } from '../ui/table.js';
import type { MachineRecord } from '../store/machine-record.js';

export default class Ls extends BaseCommand {
  static override summary = 'List machines';
  static override examples = ['<%= config.bin %> ls', '<%= config.bin %> ls --filter driver=docker --format "{{.Name}} {{.State}}"'];
  static override flags = {
    quiet: Flags.boolean({ char: 'q', description: 'Names only (no state checks)' }),
    filter: Flags.string({ description: 'Filter: driver=, state=, name= (regex), swarm= (repeatable)', multiple: true }),
    format: Flags.string({ char: 'f', description: 'Go-template-style format: {{.Name}} {{.Active}} {{.DriverName}} {{.State}} {{.URL}} {{.Swarm}} {{.DockerVersion}} {{.Error}}' }),
    json: Flags.boolean({ description: 'JSON output' }),
    timeout: Flags.integer({ char: 't', description: 'Seconds to wait for each state check', default: 10 }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Ls);
    const store = await this.store();
    const filters = parseFilters(flags.filter ?? []);
    let records = await store.loadAll();
    records = records.filter((r) => matchesStatic(r, filters));
    const needsState = !flags.quiet || filters.some((f) => f.key === 'state');
    if (!needsState) {
      this.print(records.map((r) => r.name).join('\n'));
      return;
    }
    // State checks need the engine client and the drivers: loaded only when asked for (not for -q).
    const [{ default: pLimit }, { clientTls }, { machineStatus }] = await Promise.all([import('p-limit'), import('../engine/client.js'), import('../machine/status.js')]);
    const tls: EngineTls | undefined = await clientTls(store).catch(() => undefined);
    const limit = pLimit(16);
    let statuses = await Promise.all(records.map((r) => limit(() => machineStatus(store, r, flags.timeout * 1000, tls))));
    statuses = statuses.filter((s) => matchesState(s, filters));
    if (flags.quiet) return this.print(statuses.map((s) => s.name).join('\n'));
    if (flags.json) return this.printJson(statuses);
    if (flags.format) return this.print(statuses.map((s) => formatTemplate(flags.format!, templateFields(s))).join('\n'));
    this.print(
      table(
        ['NAME', 'ACTIVE', 'DRIVER', 'STATE', 'URL', 'SWARM', 'DOCKER', 'ERRORS'],
        statuses.map((s) => [s.name, s.active ? '*' : '-', s.driver, s.state, s.url, s.swarm, s.engineVersion, s.error]),
      ),
    );
  }
}

interface Filter {
  key: string;
  value: string;
}

function parseFilters(raw: string[]): Filter[] {
  return raw.map((f) => {
    const m = /^(driver|state|name|swarm)=(.*)$/.exec(f);
    if (!m) throw new TmachineError(`unknown filter "${f}"`, { hint: 'use driver=, state=, name= or swarm=' });
    return { key: m[1]!, value: m[2]! };
  });
}

function matchesStatic(record: MachineRecord, filters: Filter[]): boolean {
  return filters.every((f) => {
    if (f.key === 'driver') return record.driver.name === f.value;
    if (f.key === 'name') return new RegExp(f.value).test(record.name);
    if (f.key === 'swarm') return (record.swarm?.role ?? '') === f.value;
    return true;
  });
}

function matchesState(status: MachineStatus, filters: Filter[]): boolean {
  return filters.every((f) => f.key !== 'state' || status.state.toLowerCase() === f.value.toLowerCase());
}

function templateFields(s: MachineStatus): Record<string, string> {
  return {
    Name: s.name,
    Active: s.active ? '*' : '-',
    ActiveHost: String(s.active),
    DriverName: s.driver,
    State: s.state,
    URL: s.url,
    Swarm: s.swarm,
    DockerVersion: s.engineVersion,
    Error: s.error,
  };
}

