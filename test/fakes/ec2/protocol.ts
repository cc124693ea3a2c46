/**
 * Wire format of the EC2 Query protocol (and the error shapes of EC2 and SSM), as the
 * official SDK sends and expects it: form bodies with flattened lists
 * (`TagSpecification.1.Tag.2.Key=...`), XML answers in the 2016-11-15 namespace with
 * `<item>` list members, and `<Response><Errors><Error>` bodies for failures.
 */
import { randomUUID } from 'node:crypto';

export const EC2_NAMESPACE = 'http://ec2.amazonaws.com/doc/2016-11-15/';
export const EC2_VERSION = '2016-11-15';

/** A form field tree: flattened lists (1-based) become arrays, dotted names objects. */
export type FormValue = string | FormTree | FormValue[];
export interface FormTree {
  [key: string]: FormValue;
}

/** `A.1.B=x&A.2.B=y&C=z` → `{ A: [{B: 'x'}, {B: 'y'}], C: 'z' }`. */
export function parseQueryForm(body: string): FormTree {
  const root: FormTree = {};
  for (const [key, value] of new URLSearchParams(body)) {
    const parts = key.split('.');
    let node: FormTree | FormValue[] = root;
    parts.forEach((part, i) => {
      const last = i === parts.length - 1;
      const nextIsIndex = !last && /^\d+$/.test(parts[i + 1]!);
      const slot: string | number = Array.isArray(node) ? Number(part) - 1 : part;
      const container = node as Record<string | number, FormValue>;
      if (last) {
        container[slot] = value;
        return;
      }
      const existing = container[slot];
      if (existing === undefined || typeof existing === 'string') container[slot] = nextIsIndex ? [] : {};
      node = container[slot] as FormTree | FormValue[];
    });
  }
  return root;
}

/** Reading helpers over a parsed form (a missing value is undefined, never a default). */
export function str(tree: FormTree | undefined, key: string): string | undefined {
  const value = tree?.[key];
  return typeof value === 'string' ? value : undefined;
}

export function list(tree: FormTree | undefined, key: string): FormValue[] {
  const value = tree?.[key];
  if (Array.isArray(value)) return value.filter((v) => v !== undefined);
  return [];
}

export function strList(tree: FormTree | undefined, key: string): string[] {
  return list(tree, key).filter((v): v is string => typeof v === 'string');
}

export function treeList(tree: FormTree | undefined, key: string): FormTree[] {
  return list(tree, key).filter((v): v is FormTree => typeof v === 'object' && !Array.isArray(v));
}

export function sub(tree: FormTree | undefined, key: string): FormTree | undefined {
  const value = tree?.[key];
  return typeof value === 'object' && !Array.isArray(value) ? value : undefined;
}

export function bool(tree: FormTree | undefined, key: string): boolean | undefined {
  const value = str(tree, key);
  if (value === undefined) return undefined;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new ApiError(400, 'InvalidParameterValue', `Invalid value '${value}' for ${key}. Valid values: true, false.`);
}

export function int(tree: FormTree | undefined, key: string): number | undefined {
  const value = str(tree, key);
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value)) throw new ApiError(400, 'InvalidParameterValue', `Invalid value '${value}' for ${key}. It must be an integer.`);
  return Number(value);
}

export function required(tree: FormTree, key: string): string {
  const value = str(tree, key);
  if (value === undefined || value === '') throw new ApiError(400, 'MissingParameter', `The request must contain the parameter ${key}`);
  return value;
}

/** An error as the service sends it: HTTP status and code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** XML element values: objects are elements by name, arrays are `<item>` lists. */
export type XmlValue = string | number | boolean | undefined | XmlValue[] | { [name: string]: XmlValue };

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

function element(name: string, value: XmlValue): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) return `<${name}>${value.map((v) => element('item', v)).join('')}</${name}>`;
  if (typeof value === 'object') {
    return `<${name}>${Object.entries(value)
      .map(([k, v]) => element(k, v))
      .join('')}</${name}>`;
  }
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

export function ec2Response(action: string, body: Record<string, XmlValue>): string {
  const inner = element('requestId', randomUUID()) + Object.entries(body).map(([k, v]) => element(k, v)).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_NAMESPACE}">${inner}</${action}Response>`;
}

export function ec2ErrorBody(error: ApiError): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${escapeXml(error.code)}</Code>` +
    `<Message>${escapeXml(error.message)}</Message></Error></Errors><RequestID>${randomUUID()}</RequestID></Response>`
  );
}

/** The SigV4 Authorization header (the signature is not checked; its presence and shape are). */
export interface SigV4Credential {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
}

export function parseSigV4(header: string | undefined): SigV4Credential | undefined {
  const match = /^AWS4-HMAC-SHA256 Credential=([^/\s]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=[^,]+, ?Signature=[0-9a-f]{64}$/.exec(header ?? '');
  if (!match) return undefined;
  return { accessKeyId: match[1]!, date: match[2]!, region: match[3]!, service: match[4]! };
}
