/**
 * The field types every section table is written in (zod schemas), and the
 * reader that applies a table to one object of the document.
 *
 * nvmetcli writes configfs values as strings ("4420", "1") and a few numbers
 * of its own, so the numeric and boolean fields accept both, as the kernel's
 * kstrto* do. Every message names the value as it was written (`"0" is out of
 * range` for a string, `0 is out of range` for a number), which is why the
 * coercing fields are transforms that report their own issue rather than a
 * coercion followed by a generic range check.
 *
 * A table is read field by field, not as one z.object: a port whose address
 * is bad still yields its portid and subsystem list, so the cross-reference
 * pass can check those too and every problem is reported in one go.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { NQN_MAX_BYTES } from './types.ts';

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/** A value as the user wrote it, cut to fit in a message. */
export function show(v: unknown): string {
  let s: string;
  try {
    s = v === undefined ? 'undefined' : JSON.stringify(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** `ports[1].addr.trsvcid` from a base path and a key or index. */
export function join(p: string, key: string | number): string {
  return typeof key === 'number' ? `${p}[${key}]` : p ? `${p}.${key}` : key;
}

type Issues = { issues: z.core.$ZodRawIssue[] };

function refuse(ctx: Issues, input: unknown, message: string): never {
  ctx.issues.push({ code: 'custom', input, message });
  return z.NEVER;
}

// ---------------------------------------------------------------------------
// Field types
// ---------------------------------------------------------------------------

/**
 * Integer from a number or a string; hex: also "0x..." (the kernel's
 * kstrto* with base 0, as attr_ieee_oui takes it).
 */
export function int(min: number, max: number, what = 'an integer', hex = false) {
  return z.unknown().transform((v, ctx): number => {
    let n: number | undefined;
    if (typeof v === 'number') n = v;
    else if (typeof v === 'string') {
      const t = v.trim();
      if (/^[+-]?\d+$/.test(t)) n = Number(t);
      else if (hex && /^0x[0-9a-f]+$/i.test(t)) n = Number.parseInt(t.slice(2), 16);
    }
    if (n === undefined || !Number.isSafeInteger(n)) return refuse(ctx, v, `${show(v)} is not ${what}`);
    if (n < min || n > max) return refuse(ctx, v, `${show(v)} is out of range (${min}..${max})`);
    return n;
  });
}

const TRUE_WORDS = ['1', 'y', 'yes', 'on', 'true'];
const FALSE_WORDS = ['0', 'n', 'no', 'off', 'false'];

/** Boolean like the kernel's kstrtobool: true/false, 1/0, "1"/"0", "y"/"n", "on"/"off". */
export const bool = z.unknown().transform((v, ctx): boolean => {
  if (typeof v === 'boolean') return v;
  if (v === 1 || v === 0) return v === 1;
  if (typeof v === 'string') {
    const t = v.trim().toLowerCase();
    if (TRUE_WORDS.includes(t)) return true;
    if (FALSE_WORDS.includes(t)) return false;
  }
  return refuse(ctx, v, `${show(v)} is not a boolean (use 0 or 1)`);
});

/** Only a JSON boolean (our own ext settings, which nvmetcli never writes). */
export const trueOrFalse = z.boolean({ error: (iss) => `${show(iss.input)} is not true or false` });

/** A string; a number is taken as its decimal text (configfs values are text). */
export const text = z.union([z.string(), z.number().transform(String)], { error: (iss) => `must be a string, got ${show(iss.input)}` });

/** Only a string. */
export const stringOnly = z.string({ error: (iss) => `must be a string, got ${show(iss.input)}` });

/** nvmet's nvmet_is_ascii(): printable ASCII 0x20..0x7e, 1..max characters. */
export function ascii(max: number, what: string) {
  return text.transform((s, ctx): string => {
    if (s.length === 0) return refuse(ctx, s, `${what} must not be empty`);
    if (!/^[\x20-\x7e]*$/.test(s)) return refuse(ctx, s, `${JSON.stringify(s)}: ${what} must be printable ASCII`);
    if (s.length > max) return refuse(ctx, s, `${JSON.stringify(s)} is ${s.length} characters; ${what} is at most ${max}`);
    return s;
  });
}

/** A TCP port; 0 (the OS chooses) only where a listener may ask for it. */
export function portNumber(allowEphemeral = false) {
  const min = allowEphemeral ? 0 : 1;
  return z.unknown().transform((v, ctx): number => {
    const t = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.trim() : undefined;
    if (t === undefined || !/^\d{1,5}$/.test(t) || Number(t) < min || Number(t) > 65535) {
      return refuse(ctx, v, `${show(v)} is not a port number (${min}..65535)`);
    }
    return Number(t);
  });
}

/** A literal IPv4 or IPv6 address (never a host name: the target listens on it or reports it). */
export const ipAddress = z.unknown().transform((v, ctx): string => {
  if (typeof v !== 'string' || v.trim() === '') return refuse(ctx, v, `${show(v)} is not an IP address (a literal IPv4 or IPv6 address is required)`);
  const t = v.trim();
  if (isIP(t) === 0) return refuse(ctx, v, `${JSON.stringify(t)} is not an IP address (a literal IPv4 or IPv6 address is required, not a host name)`);
  return t;
});

/** The adrfam check beside a valid address: the message a field of the family names. */
export function familyProblem(addr: string, adrfam: 'ipv4' | 'ipv6' | undefined): string | null {
  const fam = isIP(addr);
  if (adrfam === 'ipv4' && fam !== 4) return `${JSON.stringify(addr)} is not an IPv4 address but adrfam is "ipv4"`;
  if (adrfam === 'ipv6' && fam !== 6) return `${JSON.stringify(addr)} is not an IPv6 address but adrfam is "ipv6"`;
  return null;
}

export function isWildcard(addr: string): boolean {
  return addr === '0.0.0.0' || addr === '::' || /^(0{1,4}:){7}0{1,4}$/.test(addr) || addr === '::0';
}

export function adrfamOf(addr: string): 'ipv4' | 'ipv6' {
  return isIP(addr) === 6 ? 'ipv6' : 'ipv4';
}

/** A valid NQN: starts with "nqn.", at most 223 bytes of UTF-8, no whitespace or control characters. */
export function nqnProblem(v: unknown): string | null {
  if (typeof v !== 'string') return `${show(v)} is not an NQN (a string "nqn.yyyy-mm.reverse.domain:name")`;
  if (!v.startsWith('nqn.')) return `${JSON.stringify(v)} is not a valid NQN (must start with "nqn.", e.g. "nqn.2026-11.com.example:disk1")`;
  const len = Buffer.byteLength(v, 'utf8');
  if (len > NQN_MAX_BYTES) return `NQN is ${len} bytes long (at most ${NQN_MAX_BYTES} allowed)`;
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f\u007f]/.test(v)) return `${JSON.stringify(v)} is not a valid NQN (contains whitespace or control characters)`;
  return null;
}

export const nqn = z.unknown().transform((v, ctx): string => {
  const bad = nqnProblem(v);
  return bad ? refuse(ctx, v, bad) : (v as string);
});

/** One of a few words; `what` completes "<value> is not ...". */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T, what: string) {
  return z.enum(values, { error: (iss) => `${show(iss.input)} is not ${what}` });
}

/** A cluster node name: used in etcd keys and in ports' ext.node. */
const notNodeName = (iss: { input?: unknown }) => `${show(iss.input)} is not a node name (1..63 of A-Z a-z 0-9 _ . -, starting with a letter or digit)`;
export const nodeName = z.string({ error: notNodeName }).regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, { error: notNodeName });

const SIZE_UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

/**
 * Parse a size: a number of bytes, or a string "4096", "512K", "512M", "1G",
 * "1T", "1.5G" (binary units; "GiB", "GB", "g" are accepted and mean the same).
 * Throws RangeError unless the result is a positive safe integer.
 */
export function parseSize(input: string | number): number {
  const r = size.safeParse(input);
  if (!r.success) throw new RangeError(r.error.issues[0]!.message);
  return r.data;
}

/** A size in bytes (see parseSize). */
export const size = z.unknown().transform((v, ctx): number => {
  let bytes: number;
  if (typeof v === 'number') bytes = v;
  else if (typeof v === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$/i.exec(v);
    if (!m) return refuse(ctx, v, `${JSON.stringify(v)} is not a size (examples: 4096, "512M", "1G", "1T")`);
    bytes = Number(m[1]) * SIZE_UNITS[m[2]!.toUpperCase()]!;
  } else return refuse(ctx, v, `${show(v)} is not a size (a number of bytes or a string like "1G")`);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) return refuse(ctx, v, `${show(v)} is not a positive whole number of bytes`);
  return bytes;
});

// ---------------------------------------------------------------------------
// Tables and the reader
// ---------------------------------------------------------------------------

type Schema = z.ZodType<unknown, unknown>;
type Entry = Schema | Need<Schema | Section<Fields>> | Section<Fields> | List<Schema | Section<Fields>>;
export interface Fields {
  readonly [key: string]: Entry;
}

/**
 * One object of the document: its fields, and what an unknown key is. An
 * nvmetcli object's unknown key is a note (which attributes a dump has
 * depends on the kernel version); one of ours is an error.
 */
export class Section<F extends Fields> {
  constructor(
    readonly fields: F,
    readonly unknownKeys: 'note' | 'error',
    /** What the object should look like, for "must be an object ..., got X". */
    readonly shapeHint = '',
  ) {}
}
/** An array whose elements are read one by one (a bad element does not hide the good ones). */
export class List<E extends Schema | Section<Fields>> {
  constructor(readonly element: E) {}
}

/** A field that must be given; `missing` completes "<path>: ..." when it is not. */
export class Need<S extends Schema | Section<Fields>> {
  constructor(
    readonly inner: S,
    readonly missing: string,
  ) {}
}
export const need = <S extends Schema | Section<Fields>>(inner: S, missing = 'missing'): Need<S> => new Need(inner, missing);

/** An object nvmetcli writes (configfs attributes): unknown keys are noted and ignored. */
export const nvmetcli = <F extends Fields>(fields: F, shapeHint = ''): Section<F> => new Section(fields, 'note', shapeHint);
/** An object of ours (`ext`): unknown keys are errors. */
export const ours = <F extends Fields>(fields: F): Section<F> => new Section(fields, 'error');
export const list = <E extends Schema | Section<Fields>>(element: E): List<E> => new List(element);

type Out<E> =
  E extends Section<infer F> ? Read<F> : E extends List<infer X> ? Out<X>[] : E extends Need<infer S> ? Out<S> : E extends z.ZodType<infer O> ? O : never;

/** What a section read yields: each field's value (undefined when absent or invalid), and which were given and which refused. */
export interface Read<F extends Fields> {
  readonly path: string;
  readonly v: { readonly [K in keyof F]: Out<F[K]> | undefined };
  /** The object as written (for "given?" questions; its values are unvalidated). */
  readonly raw: Readonly<Record<string, unknown>>;
  /** Fields whose value was refused. */
  readonly bad: ReadonlySet<keyof F & string>;
}

const jsonObject = z.record(z.string(), z.unknown());
const jsonArray = z.array(z.unknown());

/** Problems and notes of one parse; the reader reports into it. */
export class Ctx {
  readonly problems: string[] = [];
  readonly notes: string[] = [];
  constructor(readonly baseDir: string) {}

  err(p: string, msg: string): void {
    this.problems.push(`${p}: ${msg}`);
  }

  note(p: string, msg: string): void {
    this.notes.push(`${p}: ${msg}`);
  }

  /** One value through one schema; its issues become problems under path p. */
  field<S extends Schema>(schema: S, v: unknown, p: string): z.output<S> | undefined {
    const r = schema.safeParse(v);
    if (r.success) return r.data;
    for (const iss of r.error.issues)
      this.err(
        iss.path.reduce<string>((acc, k) => join(acc, typeof k === 'number' ? k : String(k)), p),
        iss.message,
      );
    return undefined;
  }

  /** An object section: undefined when absent (or null), a problem when not an object. */
  section<F extends Fields>(s: Section<F>, v: unknown, p: string, required = false): Read<F> | undefined {
    if ((v === undefined || v === null) && !required) return undefined;
    const obj = jsonObject.safeParse(v);
    if (!obj.success) {
      this.err(p, `must be an object${s.shapeHint ? ` ${s.shapeHint}` : ''}, got ${show(v)}`);
      return undefined;
    }
    const raw = obj.data;
    const known = Object.keys(s.fields);
    for (const k of Object.keys(raw)) {
      if (known.includes(k)) continue;
      if (s.unknownKeys === 'note') this.note(join(p, k), `unknown nvmetcli attribute ${show(raw[k])} ignored`);
      else this.err(join(p, k), `unknown key (expected one of: ${known.join(', ')})`);
    }
    const out: Record<string, unknown> = {};
    const bad = new Set<string>();
    for (const k of known) {
      const before = this.problems.length;
      out[k] = this.entry(s.fields[k]!, raw[k], join(p, k));
      if (this.problems.length > before) bad.add(k);
    }
    return { path: p, v: out as Read<F>['v'], raw, bad: bad };
  }

  /** A list: [] when absent (or null), a problem when not an array; each element read on its own. */
  list<E extends Schema | Section<Fields>>(l: List<E>, v: unknown, p: string): (Out<E> | undefined)[] {
    if (v === undefined || v === null) return [];
    const arr = jsonArray.safeParse(v);
    if (!arr.success) {
      this.err(p, `must be an array, got ${show(v)}`);
      return [];
    }
    // An element is never "absent": null in a list is a wrong value.
    return arr.data.map(
      (x, i) => (l.element instanceof Section ? this.section(l.element, x, join(p, i), true) : this.field(l.element, x, join(p, i))) as Out<E> | undefined,
    );
  }

  entry(e: Entry, v: unknown, p: string): unknown {
    if (e instanceof Section) return this.section(e, v, p);
    if (e instanceof List) return this.list(e, v, p);
    if (e instanceof Need) {
      if (v !== undefined) return this.entry(e.inner, v, p);
      this.err(p, e.missing);
      return undefined;
    }
    return v === undefined ? undefined : this.field(e, v, p);
  }
}
