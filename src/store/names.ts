/**
 * The store's constants, kept apart from the record schema: listing machines (`ls -q`) needs
 * names and the schema version, not zod (~100 modules to load).
 */
export const STORE_SCHEMA_VERSION = 1;

export const MACHINE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9.-]{0,62}$/;
