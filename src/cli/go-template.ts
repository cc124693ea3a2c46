/**
 * The part of Go's text/template that Docker Machine users put in `--format`: field paths
 * (`{{.Driver.IPAddress}}`, `{{.}}`), pipelines into functions (`{{json .Driver}}`,
 * `{{.Name | upper}}`), `if`/`else`/`range`/`with` ... `end`, and `{{-`/`-}}` trimming.
 * Values print as Go prints them (`[a b]` for a list, `map[k:v]` for a map, `<no value>`
 * for a missing map key). No npm package implements Go templates, so this is small and
 * local; anything outside the subset is one clear error naming what is not supported.
 */
import { TmachineError } from '../errors.js';

type Value = unknown;

interface TextNode {
  kind: 'text';
  text: string;
}
interface ActionNode {
  kind: 'action';
  pipeline: Pipeline;
}
interface BlockNode {
  kind: 'if' | 'range' | 'with';
  pipeline: Pipeline;
  body: Node[];
  otherwise: Node[];
}
type Node = TextNode | ActionNode | BlockNode;

type Operand = { kind: 'field'; path: string[] } | { kind: 'string'; value: string } | { kind: 'number'; value: number } | { kind: 'ident'; name: string };
/** A pipeline: commands separated by `|`; each command is operands (a function and its arguments). */
type Pipeline = Operand[][];

const FUNCTIONS: Record<string, (...args: Value[]) => Value> = {
  json: (v) => goJson(v),
  upper: (v) => formatGo(v).toUpperCase(),
  lower: (v) => formatGo(v).toLowerCase(),
  len: (v) => (Array.isArray(v) ? v.length : typeof v === 'string' ? v.length : v && typeof v === 'object' ? Object.keys(v).length : 0),
  join: (list, sep) => (Array.isArray(list) ? list.map(formatGo).join(String(sep ?? '')) : formatGo(list)),
  printf: (format, ...args) => printf(String(format), args),
  print: (...args) => args.map(formatGo).join(' '),
  println: (...args) => args.map(formatGo).join(' ') + '\n',
};

function templateError(template: string, what: string): TmachineError {
  return new TmachineError(`--format ${JSON.stringify(template)}: ${what}`, {
    hint: 'Go template syntax, e.g. {{.Name}}, {{.Driver.IPAddress}}, {{json .Driver}}',
  });
}

/** Parses and runs `template` over `data`. */
export function renderGoTemplate(template: string, data: Value): string {
  const nodes = parse(template);
  return execute(template, nodes, data, data);
}

// --- parsing -----------------------------------------------------------------------------

function parse(template: string): Node[] {
  const tokens: Array<{ text: string } | { action: string }> = [];
  let rest = template;
  while (rest.length > 0) {
    const open = rest.indexOf('{{');
    if (open < 0) {
      tokens.push({ text: rest });
      break;
    }
    let text = rest.slice(0, open);
    const close = rest.indexOf('}}', open + 2);
    if (close < 0) throw templateError(template, 'unclosed action ("{{" without "}}")');
    let inner = rest.slice(open + 2, close);
    if (inner.startsWith('-')) {
      inner = inner.slice(1);
      text = text.replace(/\s+$/, '');
    }
    let after = rest.slice(close + 2);
    if (inner.endsWith('-')) {
      inner = inner.slice(0, -1);
      after = after.replace(/^\s+/, '');
    }
    if (text) tokens.push({ text });
    tokens.push({ action: inner.trim() });
    rest = after;
  }

  let i = 0;
  const parseList = (terminators: string[]): { nodes: Node[]; end: string } => {
    const nodes: Node[] = [];
    while (i < tokens.length) {
      const token = tokens[i++]!;
      if ('text' in token) {
        nodes.push({ kind: 'text', text: token.text });
        continue;
      }
      const action = token.action;
      const keyword = /^(\w+)\b/.exec(action)?.[1];
      if (keyword && terminators.includes(keyword)) return { nodes, end: keyword };
      if (action.startsWith('/*')) continue; // comment
      if (keyword === 'if' || keyword === 'range' || keyword === 'with') {
        const pipeline = parsePipeline(template, action.slice(keyword.length));
        const body = parseList(['else', 'end']);
        let otherwise: Node[] = [];
        if (body.end === 'else') otherwise = parseList(['end']).nodes;
        nodes.push({ kind: keyword, pipeline, body: body.nodes, otherwise });
        continue;
      }
      if (keyword === 'end' || keyword === 'else') throw templateError(template, `unexpected {{${keyword}}}`);
      if (keyword && ['define', 'template', 'block'].includes(keyword)) throw templateError(template, `{{${keyword}}} is not supported here`);
      nodes.push({ kind: 'action', pipeline: parsePipeline(template, action) });
    }
    if (terminators.length > 0) throw templateError(template, `missing {{end}}`);
    return { nodes, end: '' };
  };
  return parseList([]).nodes;
}

function parsePipeline(template: string, source: string): Pipeline {
  const commands: Operand[][] = [[]];
  const re = /\s*("(?:[^"\\]|\\.)*"|`[^`]*`|\||-?\d+(?:\.\d+)?|\.[\w.]*|\$\w*|[A-Za-z_]\w*)/y;
  let pos = 0;
  const text = source.trim();
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) throw templateError(template, `cannot read "${text.slice(pos)}"`);
    pos = re.lastIndex;
    const tok = m[1]!;
    if (tok === '|') {
      commands.push([]);
      continue;
    }
    const current = commands[commands.length - 1]!;
    if (tok.startsWith('"')) current.push({ kind: 'string', value: JSON.parse(tok) as string });
    else if (tok.startsWith('`')) current.push({ kind: 'string', value: tok.slice(1, -1) });
    else if (/^-?\d/.test(tok)) current.push({ kind: 'number', value: Number(tok) });
    else if (tok.startsWith('.')) current.push({ kind: 'field', path: tok === '.' ? [] : tok.slice(1).split('.') });
    else if (tok.startsWith('$')) throw templateError(template, 'variables ($x) are not supported');
    else current.push({ kind: 'ident', name: tok });
    while (pos < text.length && /\s/.test(text[pos]!)) pos++;
  }
  if (commands.some((c) => c.length === 0)) throw templateError(template, 'empty command in a pipeline');
  return commands;
}

// --- execution ---------------------------------------------------------------------------

function execute(template: string, nodes: Node[], dot: Value, root: Value): string {
  let out = '';
  for (const node of nodes) {
    if (node.kind === 'text') out += node.text;
    else if (node.kind === 'action') out += formatGo(evalPipeline(template, node.pipeline, dot));
    else {
      const value = evalPipeline(template, node.pipeline, dot);
      if (node.kind === 'if') out += execute(template, truthy(value) ? node.body : node.otherwise, dot, root);
      else if (node.kind === 'with') out += truthy(value) ? execute(template, node.body, value, root) : execute(template, node.otherwise, dot, root);
      else {
        const items = Array.isArray(value) ? value : value && typeof value === 'object' ? Object.keys(value).sort().map((k) => (value as Record<string, Value>)[k]) : [];
        if (items.length === 0) out += execute(template, node.otherwise, dot, root);
        for (const item of items) out += execute(template, node.body, item, root);
      }
    }
  }
  return out;
}

function evalPipeline(template: string, pipeline: Pipeline, dot: Value): Value {
  let previous: Value | typeof NONE = NONE;
  for (const command of pipeline) {
    const [head, ...rest] = command;
    const args = rest.map((op) => evalOperand(template, op, dot));
    if (head!.kind === 'ident') {
      const fn = FUNCTIONS[head!.name];
      if (!fn) throw templateError(template, `function "${head!.name}" not defined (known: ${Object.keys(FUNCTIONS).join(', ')})`);
      previous = fn(...args, ...(previous === NONE ? [] : [previous]));
    } else {
      if (args.length > 0 || previous !== NONE) throw templateError(template, `can't give arguments to a non-function`);
      previous = evalOperand(template, head!, dot);
    }
  }
  return previous === NONE ? undefined : previous;
}

const NONE = Symbol('none');

function evalOperand(template: string, op: Operand, dot: Value): Value {
  if (op.kind === 'string' || op.kind === 'number') return op.value;
  if (op.kind === 'ident') {
    if (op.name === 'true') return true;
    if (op.name === 'false') return false;
    if (op.name === 'nil') return null;
    const fn = FUNCTIONS[op.name];
    if (fn) return fn();
    throw templateError(template, `function "${op.name}" not defined`);
  }
  let value: Value = dot;
  for (const key of op.path) {
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const record = value as Record<string, Value>;
      if (key in record) {
        value = record[key];
        continue;
      }
      if (isGoMap(record)) {
        value = undefined;
        continue;
      }
      throw templateError(template, `can't evaluate field ${key} (fields here: ${Object.keys(record).join(', ')})`);
    }
    throw templateError(template, `can't evaluate field ${key} in a ${value === null || value === undefined ? 'nil value' : typeof value}`);
  }
  return value;
}

/** Objects marked as Go maps print `<no value>` for a missing key instead of failing. */
const GO_MAP = Symbol.for('tmachine.goMap');
export function goMap<T extends object>(value: T): T {
  Object.defineProperty(value, GO_MAP, { value: true, enumerable: false });
  return value;
}
function isGoMap(value: object): boolean {
  return (value as Record<symbol, unknown>)[GO_MAP] === true;
}

function truthy(value: Value): boolean {
  if (Array.isArray(value)) return value.length > 0;
  if (value && typeof value === 'object') return Object.keys(value).length > 0;
  return Boolean(value);
}

/** fmt's %v. */
export function formatGo(value: Value): string {
  if (value === undefined) return '<no value>';
  if (value === null) return '<nil>';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(formatGo).join(' ')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, Value>);
    if (isGoMap(value)) return `map[${entries.sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}:${formatGo(v)}`).join(' ')}]`;
    return `{${entries.map(([, v]) => formatGo(v)).join(' ')}}`;
  }
  return String(value);
}

/** encoding/json as Go's `json` template function writes it: compact, HTML characters escaped. */
function goJson(value: Value): string {
  return (JSON.stringify(value ?? null) ?? 'null').replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
}

function printf(format: string, args: Value[]): string {
  let i = 0;
  return format.replace(/%([-+# 0]*\d*(?:\.\d+)?)([svdqtf%])/g, (_m, _flags: string, verb: string) => {
    if (verb === '%') return '%';
    const arg = args[i++];
    if (verb === 'q') return JSON.stringify(formatGo(arg));
    if (verb === 'd') return String(Math.trunc(Number(arg)));
    if (verb === 'f') return Number(arg).toFixed(6);
    return formatGo(arg);
  });
}
