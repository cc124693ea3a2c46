/**
 * A minimal ISO 9660 (ECMA-119) image writer with Joliet names, enough for a cloud-init
 * NoCloud seed: one root directory holding a few small files. Written here rather than
 * shelling out to genisoimage/xorriso so a VirtualBox host needs nothing but VirtualBox.
 *
 * Layout (2048-byte logical sectors):
 *   0-15   system area (zeros)
 *   16     primary volume descriptor (8.4)
 *   17     supplementary volume descriptor, Joliet UCS-2 level 3 (escape "%/E")
 *   18     volume descriptor set terminator
 *   19, 20 type L and type M path tables of the primary tree
 *   21, 22 type L and type M path tables of the Joliet tree
 *   23     root directory of the primary tree (8.3 upper-case names)
 *   24     root directory of the Joliet tree (the real names)
 *   25...  file data, shared by both trees
 */

const SECTOR = 2048;

export interface IsoFile {
  /** The name as the guest should see it ("meta-data"); plain ASCII, at most 64 characters. */
  name: string;
  content: Buffer | string;
}

export interface IsoOptions {
  /** Volume label ("cidata" for a NoCloud seed); at most 16 characters. */
  volumeId: string;
  files: IsoFile[];
  /** Recording time for every timestamp (defaults to now). */
  date?: Date;
}

/** Builds the whole image in memory (seeds are a few kilobytes). */
export function buildIsoImage(options: IsoOptions): Buffer {
  const date = options.date ?? new Date();
  if (options.volumeId.length === 0 || options.volumeId.length > 16 || !/^[\x20-\x7e]+$/.test(options.volumeId)) {
    throw new Error(`ISO volume id "${options.volumeId}" must be 1-16 printable ASCII characters`);
  }
  const names = new Set<string>();
  for (const file of options.files) {
    if (!/^[\x21-\x7e]{1,64}$/.test(file.name) || file.name.includes('/') || file.name.includes(';')) {
      throw new Error(`ISO file name "${file.name}" must be 1-64 printable ASCII characters without '/' or ';'`);
    }
    if (names.has(file.name)) throw new Error(`ISO file name "${file.name}" appears twice`);
    names.add(file.name);
  }

  const primaryNames = shortNames(options.files.map((f) => f.name));
  const contents = options.files.map((f) => (typeof f.content === 'string' ? Buffer.from(f.content, 'utf8') : f.content));

  // Fixed metadata sectors, then each file's extent.
  const PVD = 16;
  const SVD = 17;
  const TERMINATOR = 18;
  const PRIMARY_L = 19;
  const PRIMARY_M = 20;
  const JOLIET_L = 21;
  const JOLIET_M = 22;
  const PRIMARY_ROOT = 23;
  const JOLIET_ROOT = 24;
  let next = 25;
  const extents = contents.map((c) => {
    const at = next;
    next += Math.max(1, Math.ceil(c.length / SECTOR));
    return at;
  });
  const totalSectors = next;
  const image = Buffer.alloc(totalSectors * SECTOR);

  const primaryEntries = options.files.map((_, i) => ({ id: Buffer.from(`${primaryNames[i]!};1`, 'ascii'), extent: extents[i]!, size: contents[i]!.length }));
  const jolietEntries = options.files.map((f, i) => ({ id: ucs2(f.name), extent: extents[i]!, size: contents[i]!.length }));
  // 9.3: records in a directory are ordered by file identifier.
  primaryEntries.sort((a, b) => Buffer.compare(a.id, b.id));
  jolietEntries.sort((a, b) => Buffer.compare(a.id, b.id));

  const primaryRoot = directory(PRIMARY_ROOT, primaryEntries, date);
  const jolietRoot = directory(JOLIET_ROOT, jolietEntries, date);
  primaryRoot.copy(image, PRIMARY_ROOT * SECTOR);
  jolietRoot.copy(image, JOLIET_ROOT * SECTOR);

  const pathTableSize = 10; // one record: the root (9.4)
  pathTable(PRIMARY_ROOT, 'le').copy(image, PRIMARY_L * SECTOR);
  pathTable(PRIMARY_ROOT, 'be').copy(image, PRIMARY_M * SECTOR);
  pathTable(JOLIET_ROOT, 'le').copy(image, JOLIET_L * SECTOR);
  pathTable(JOLIET_ROOT, 'be').copy(image, JOLIET_M * SECTOR);

  volumeDescriptor({
    type: 1,
    text: (s, len) => aString(s, len),
    volumeId: options.volumeId,
    totalSectors,
    pathTableSize,
    lTable: PRIMARY_L,
    mTable: PRIMARY_M,
    rootRecord: directoryRecord(Buffer.from([0]), PRIMARY_ROOT, SECTOR, 0x02, date),
    date,
  }).copy(image, PVD * SECTOR);
  volumeDescriptor({
    type: 2,
    text: (s, len) => ucs2Field(s, len),
    volumeId: options.volumeId,
    totalSectors,
    pathTableSize,
    lTable: JOLIET_L,
    mTable: JOLIET_M,
    rootRecord: directoryRecord(Buffer.from([0]), JOLIET_ROOT, SECTOR, 0x02, date),
    date,
    escape: Buffer.from('%/E', 'ascii'), // UCS-2 level 3 (Joliet)
  }).copy(image, SVD * SECTOR);

  const terminator = Buffer.alloc(SECTOR);
  terminator[0] = 255;
  terminator.write('CD001', 1, 'ascii');
  terminator[6] = 1;
  terminator.copy(image, TERMINATOR * SECTOR);

  contents.forEach((c, i) => c.copy(image, extents[i]! * SECTOR));
  return image;
}

interface DescriptorInput {
  type: 1 | 2;
  text: (value: string, length: number) => Buffer;
  volumeId: string;
  totalSectors: number;
  pathTableSize: number;
  lTable: number;
  mTable: number;
  rootRecord: Buffer;
  date: Date;
  escape?: Buffer;
}

/** 8.4 (primary) and 8.5 (supplementary) volume descriptors share one layout. */
function volumeDescriptor(input: DescriptorInput): Buffer {
  const d = Buffer.alloc(SECTOR);
  d[0] = input.type;
  d.write('CD001', 1, 'ascii');
  d[6] = 1;
  input.text('', 32).copy(d, 8); // system identifier
  input.text(input.volumeId, 32).copy(d, 40);
  bothEndian32(input.totalSectors).copy(d, 80);
  input.escape?.copy(d, 88);
  bothEndian16(1).copy(d, 120); // volume set size
  bothEndian16(1).copy(d, 124); // volume sequence number
  bothEndian16(SECTOR).copy(d, 128);
  bothEndian32(input.pathTableSize).copy(d, 132);
  d.writeUInt32LE(input.lTable, 140);
  d.writeUInt32BE(input.mTable, 148);
  input.rootRecord.copy(d, 156);
  input.text('', 128).copy(d, 190); // volume set
  input.text('', 128).copy(d, 318); // publisher
  input.text('', 128).copy(d, 446); // data preparer
  input.text('TMACHINE', 128).copy(d, 574); // application
  input.text('', 37).copy(d, 702);
  input.text('', 37).copy(d, 739);
  input.text('', 37).copy(d, 776);
  longDate(input.date).copy(d, 813); // creation
  longDate(input.date).copy(d, 830); // modification
  longDate(undefined).copy(d, 847); // expiration: none
  longDate(undefined).copy(d, 864); // effective: now
  d[881] = 1; // file structure version
  return d;
}

interface Entry {
  id: Buffer;
  extent: number;
  size: number;
}

/** One directory sector: ".", "..", then the files (every record fits in one sector here). */
function directory(self: number, entries: Entry[], date: Date): Buffer {
  const records = [
    directoryRecord(Buffer.from([0]), self, SECTOR, 0x02, date),
    directoryRecord(Buffer.from([1]), self, SECTOR, 0x02, date), // the root is its own parent
    ...entries.map((e) => directoryRecord(e.id, e.extent, e.size, 0x00, date)),
  ];
  const data = Buffer.concat(records);
  if (data.length > SECTOR) throw new Error('ISO directory does not fit in one sector (too many files)');
  const sector = Buffer.alloc(SECTOR);
  data.copy(sector);
  return sector;
}

/** 9.1 directory record. */
function directoryRecord(id: Buffer, extent: number, size: number, flags: number, date: Date): Buffer {
  const length = 33 + id.length + (id.length % 2 === 0 ? 1 : 0);
  const r = Buffer.alloc(length);
  r[0] = length;
  r[1] = 0; // extended attribute record length
  bothEndian32(extent).copy(r, 2);
  bothEndian32(size).copy(r, 10);
  shortDate(date).copy(r, 18);
  r[25] = flags;
  r[26] = 0;
  r[27] = 0;
  bothEndian16(1).copy(r, 28);
  r[32] = id.length;
  id.copy(r, 33);
  return r;
}

/** 9.4 path table with the root as its only directory. */
function pathTable(rootExtent: number, order: 'le' | 'be'): Buffer {
  const t = Buffer.alloc(10);
  t[0] = 1; // length of directory identifier
  t[1] = 0;
  if (order === 'le') {
    t.writeUInt32LE(rootExtent, 2);
    t.writeUInt16LE(1, 6);
  } else {
    t.writeUInt32BE(rootExtent, 2);
    t.writeUInt16BE(1, 6);
  }
  t[8] = 0; // root identifier
  t[9] = 0; // padding to an even length
  return t;
}

/**
 * Level 1 names for the primary tree: 8 d-characters, a dot, up to 3 more ("META_DAT.").
 * The Joliet tree carries the real names; these only have to be valid and unique.
 */
function shortNames(names: string[]): string[] {
  const used = new Set<string>();
  return names.map((name) => {
    const dot = name.lastIndexOf('.');
    const stem = (dot > 0 ? name.slice(0, dot) : name).toUpperCase().replace(/[^A-Z0-9_]/g, '_');
    const ext = (dot > 0 ? name.slice(dot + 1) : '').toUpperCase().replace(/[^A-Z0-9_]/g, '_').slice(0, 3);
    let base = stem.slice(0, 8) || '_';
    let candidate = `${base}.${ext}`;
    for (let n = 1; used.has(candidate); n++) {
      const suffix = String(n);
      base = stem.slice(0, 8 - suffix.length) + suffix;
      candidate = `${base}.${ext}`;
    }
    used.add(candidate);
    return candidate;
  });
}

function bothEndian32(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(n, 0);
  b.writeUInt32BE(n, 4);
  return b;
}

function bothEndian16(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(n, 0);
  b.writeUInt16BE(n, 2);
  return b;
}

/** a-/d-character field, padded with spaces. */
function aString(value: string, length: number): Buffer {
  const b = Buffer.alloc(length, 0x20);
  b.write(value.slice(0, length), 0, 'ascii');
  return b;
}

/** UCS-2 big-endian, as Joliet stores names. */
function ucs2(value: string): Buffer {
  const le = Buffer.from(value, 'utf16le');
  for (let i = 0; i < le.length; i += 2) {
    const lo = le[i]!;
    le[i] = le[i + 1]!;
    le[i + 1] = lo;
  }
  return le;
}

/** A Joliet descriptor text field: UCS-2BE, padded with UCS-2 spaces (an odd tail byte stays 0x00). */
function ucs2Field(value: string, length: number): Buffer {
  const b = Buffer.alloc(length, 0);
  for (let i = 0; i + 1 < length; i += 2) {
    b[i] = 0x00;
    b[i + 1] = 0x20;
  }
  ucs2(value.slice(0, Math.floor(length / 2))).copy(b, 0);
  return b;
}

/** 9.1.5: seven bytes, years since 1900, GMT offset in 15-minute steps (0: UTC). */
function shortDate(d: Date): Buffer {
  return Buffer.from([d.getUTCFullYear() - 1900, d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), 0]);
}

/** 8.4.26.1: "YYYYMMDDHHMMSScc" digits plus a GMT offset byte; all zeros means "not specified". */
function longDate(d: Date | undefined): Buffer {
  const b = Buffer.alloc(17, 0x30);
  b[16] = 0;
  if (!d) return b;
  const pad = (n: number, w: number) => String(n).padStart(w, '0');
  const text = `${pad(d.getUTCFullYear(), 4)}${pad(d.getUTCMonth() + 1, 2)}${pad(d.getUTCDate(), 2)}${pad(d.getUTCHours(), 2)}${pad(d.getUTCMinutes(), 2)}${pad(d.getUTCSeconds(), 2)}${pad(Math.floor(d.getUTCMilliseconds() / 10), 2)}`;
  b.write(text, 0, 'ascii');
  return b;
}
