/** The machine record: machines/NAME/config.json. Validated on every read. */
import { z } from 'zod';

import { MACHINE_NAME } from './names.js';

export { MACHINE_NAME, STORE_SCHEMA_VERSION } from './names.js';

const jsonObject = z.record(z.string(), z.unknown());

export const engineOptionsSchema = z.object({
  install: z.enum(['bundle', 'script', 'package', 'none']),
  /** Wanted engine version ("20.10.24"); for bundles the version inside the bundle. */
  version: z.string().optional(),
  /** Local path or URL of the bundle; resolved into the cache before install. */
  bundle: z.string().optional(),
  bundleSha256: z.string().optional(),
  installUrl: z.string().optional(),
  opts: z.array(z.string()).default([]),
  env: z.array(z.string()).default([]),
  labels: z.array(z.string()).default([]),
  insecureRegistries: z.array(z.string()).default([]),
  registryMirrors: z.array(z.string()).default([]),
  storageDriver: z.string().optional(),
  /** HOST:PORT=FILE, the CA file content is copied into the machine dir at create. */
  registryCAs: z.array(z.object({ registry: z.string(), caFile: z.string() })).default([]),
  port: z.number().int().default(2376),
  /** Move an engine configuration that listens elsewhere (plain TCP on 2375) aside instead of refusing. */
  migrateTls: z.boolean().optional(),
});
export type EngineOptions = z.infer<typeof engineOptionsSchema>;

export const machineRecordSchema = z.object({
  schemaVersion: z.number().int(),
  name: z.string().regex(MACHINE_NAME),
  createdAt: z.string(),
  /** True until create finished; a record left like this is what an interrupted create made. */
  creating: z.boolean().optional(),
  driver: z.object({
    name: z.string(),
    /** Flag values as given at create (secrets never stored here). */
    options: jsonObject.default({}),
    /** Driver-owned state (container id, instance id, ...). */
    state: jsonObject.default({}),
    /**
     * The undo log: every resource the driver made, recorded the moment it existed. rm, a
     * failed create and an interrupted create remove exactly these, newest first.
     */
    resources: z
      .array(
        z.object({
          kind: z.string(),
          id: z.string(),
          label: z.string().optional(),
          shared: z.boolean().optional(),
          details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
        }),
      )
      .default([]),
  }),
  ssh: z.object({
    user: z.string(),
    host: z.string(),
    port: z.number().int(),
    /** File name inside the machine dir, or an absolute path for keys the user supplied. */
    keyPath: z.string(),
    /** Pinned host key, base64 of the SSH wire format, with its SHA256 fingerprint. */
    hostKey: z.object({ algorithm: z.string(), key: z.string(), fingerprint: z.string() }).optional(),
  }),
  addresses: z.object({ public: z.string(), private: z.string().optional() }),
  engine: engineOptionsSchema,
  provisioned: z
    .object({ at: z.string(), engineVersion: z.string().optional(), os: z.string().optional() })
    .optional(),
  swarm: z
    .object({ cluster: z.string().optional(), role: z.enum(['manager', 'worker']).optional(), nodeId: z.string().optional() })
    .optional(),
});
export type MachineRecord = z.infer<typeof machineRecordSchema>;
