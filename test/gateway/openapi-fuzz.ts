/**
 * Hostile requests derived from a live OpenAPI document: for every operation, malformed path
 * parameters, query parameters and JSON bodies (NUL, lone UTF-16 surrogates, huge strings, wrong
 * types, deep nesting, unknown fields). Deterministic: the same document and seed give the same
 * cases. Pure: building the cases does no I/O.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Schema = Record<string, unknown>;

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema?: Schema;
}

interface Operation {
  operationId: string;
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content: Record<string, { schema: Schema }> };
  responses: Record<string, unknown>;
  security?: unknown[];
}

export interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
}

export interface FuzzCase {
  operationId: string;
  method: string;
  /** Raw request target (already percent-encoded as it goes on the wire). */
  target: string;
  /** What was made hostile, for the failure report. */
  what: string;
  body?: string;
  contentType?: string;
  /** Statuses the document lists for the operation. */
  documented: number[];
}

export interface FuzzSeeds {
  /** A valid raw value for each path parameter, by the path's first segment after /v1 (`instances`, `backups`...). */
  pathValue(path: string, name: string): string;
  /** A valid value for a body field of this name, when the schema alone cannot give one (node ids, host paths, cron...). */
  fieldHint(name: string): Json | undefined;
}

/** Raw path parameter values: NUL, lone surrogate (as UTF-8 bytes), traversal, bad escapes, huge. */
const HOSTILE_PATH_VALUES = ['%00', 'a%00b', '%ED%A0%80', '..', '%2E%2E%2F%2E%2E', '%', '%zz', '%C3%BC', "'", 'a'.repeat(3000)];

/** Raw query values: the same kinds, plus numbers out of range and words where numbers go. */
const HOSTILE_QUERY_VALUES = ['%00', '%ED%A0%80', '%FF', '', '%2E%2E%2Fetc', '-1', '1e309', 'abc', 'x'.repeat(5000)];

/** Values every JSON body leaf is replaced with: NUL and a lone surrogate. */
const HOSTILE_LEAF_VALUES: Json[] = ['a\u0000b', '\ud800'];
/** Values a seeded half of the leaves is also replaced with: a lone low surrogate, a huge string, wrong types. */
const SAMPLED_LEAF_VALUES: Json[] = ['x\udfffy', 'x'.repeat(20_000), -1, true, null];
/** Values an object or array of a body is replaced with. */
const HOSTILE_CONTAINER_VALUES: Json[] = ['\ud800', 1.5];

/** Whole bodies that are not what any operation takes. */
const HOSTILE_BODIES: { what: string; body: string; contentType?: string }[] = [
  { what: 'not JSON', body: 'not json' },
  { what: 'truncated JSON', body: '{"a":' },
  { what: 'JSON null', body: 'null' },
  { what: 'JSON array', body: '[]' },
  { what: 'JSON string with NUL', body: '"\\u0000"' },
  { what: 'deeply nested arrays', body: `${'['.repeat(5000)}${']'.repeat(5000)}` },
  { what: 'deeply nested objects', body: `${'{"a":'.repeat(3000)}1${'}'.repeat(3000)}` },
  { what: 'text/plain body', body: '{}', contentType: 'text/plain' },
];

/** A small seeded PRNG (mulberry32), so sampling is the same on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function fuzzCases(doc: OpenApiDocument, seeds: FuzzSeeds, random: () => number): FuzzCase[] {
  const cases: FuzzCase[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const documented = Object.keys(op.responses).map(Number);
      const params = op.parameters ?? [];
      const pathParams = params.filter((p) => p.in === 'path');
      const queryParams = params.filter((p) => p.in === 'query');
      const fill = (override?: { name: string; raw: string }) =>
        path.replace(/\{([^}]+)\}/g, (_, name: string) => (override?.name === name ? override.raw : seeds.pathValue(path, name)));
      const requiredQuery = queryParams
        .filter((p) => p.required)
        .map((p) => `${p.name}=${encodeURIComponent(String(generate(doc, p.schema ?? {}, p.name, seeds)))}`);
      const withQuery = (target: string, extra: string[]) => {
        const parts = [...requiredQuery, ...extra];
        return parts.length ? `${target}?${parts.join('&')}` : target;
      };
      const base = { operationId: op.operationId, method: method.toUpperCase(), documented };
      const validBody = op.requestBody ? JSON.stringify(generate(doc, op.requestBody.content['application/json']!.schema, '', seeds)) : undefined;
      const withBody = validBody !== undefined ? { body: validBody } : {};

      for (const p of pathParams) {
        for (const raw of HOSTILE_PATH_VALUES)
          cases.push({ ...base, ...withBody, target: withQuery(fill({ name: p.name, raw }), []), what: `path ${p.name}=${short(raw)}` });
      }
      for (const p of queryParams) {
        for (const raw of HOSTILE_QUERY_VALUES) {
          const others = requiredQuery.filter((q) => !q.startsWith(`${p.name}=`));
          cases.push({ ...base, ...withBody, target: withQueryOnly(fill(), [...others, `${p.name}=${raw}`]), what: `query ${p.name}=${short(raw)}` });
        }
        cases.push({ ...base, ...withBody, target: withQuery(fill(), [`${p.name}[x]=1`]), what: `query ${p.name}[x]` });
      }
      if (queryParams.length || method === 'get') {
        cases.push({ ...base, ...withBody, target: withQuery(fill(), ['fuzz%00=1']), what: 'unknown query parameter' });
      }
      if (op.requestBody) {
        const schema = op.requestBody.content['application/json']!.schema;
        const valid = generate(doc, schema, '', seeds);
        for (const b of HOSTILE_BODIES)
          cases.push({ ...base, target: withQuery(fill(), []), what: `body: ${b.what}`, body: b.body, contentType: b.contentType });
        if (isObject(valid)) {
          cases.push({ ...base, target: withQuery(fill(), []), what: 'body: unknown field', body: JSON.stringify({ ...valid, 'fuzz\u0000': 1 }) });
          cases.push({
            ...base,
            target: withQuery(fill(), []),
            what: 'body: __proto__ field',
            body: `{"__proto__":{"role":"admin"},${JSON.stringify(valid).slice(1)}`,
          });
        }
        for (const at of nodePaths(valid)) {
          const node = at.reduce<Json>((v, k) => (v as Record<string | number, Json>)[k]!, valid);
          const values =
            typeof node === 'object' && node !== null
              ? HOSTILE_CONTAINER_VALUES
              : [...HOSTILE_LEAF_VALUES, ...SAMPLED_LEAF_VALUES.filter(() => random() < 0.5)];
          for (const value of values) {
            cases.push({
              ...base,
              target: withQuery(fill(), []),
              what: `body ${at.join('.')}=${short(JSON.stringify(value))}`,
              body: JSON.stringify(replaceAt(valid, at, value)),
            });
          }
        }
      }
    }
  }
  return cases;
}

function withQueryOnly(target: string, parts: string[]): string {
  return parts.length ? `${target}?${parts.join('&')}` : target;
}

function short(s: string): string {
  return s.length > 40 ? `${s.slice(0, 20)}…(${s.length} chars)` : s;
}

function isObject(v: Json): v is { [key: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every node of a JSON value but the root, as key paths. */
function nodePaths(value: Json, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [];
  const children: [string | number, Json][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : isObject(value) ? Object.entries(value) : [];
  for (const [k, v] of children) {
    out.push([...at, k]);
    out.push(...nodePaths(v, [...at, k]));
  }
  return out;
}

function replaceAt(value: Json, at: (string | number)[], replacement: Json): Json {
  if (at.length === 0) return replacement;
  const [head, ...rest] = at;
  if (Array.isArray(value)) return value.map((v, i) => (i === head ? replaceAt(v, rest, replacement) : v));
  if (isObject(value)) return { ...value, [head!]: replaceAt(value[head as string]!, rest, replacement) };
  return value;
}

/** A value the schema accepts (as far as a schema can tell: hints give ids and paths that exist). */
function generate(doc: OpenApiDocument, schema: Schema, name: string, seeds: FuzzSeeds, depth = 0): Json {
  const hint = seeds.fieldHint(name);
  if (hint !== undefined) return hint;
  if (depth > 8) return null;
  if (typeof schema.$ref === 'string') return generate(doc, doc.components.schemas[schema.$ref.split('/').pop()!] ?? {}, name, seeds, depth + 1);
  for (const key of ['oneOf', 'anyOf', 'allOf'] as const) {
    const variants = schema[key] as Schema[] | undefined;
    if (variants?.length) return generate(doc, variants.find((v) => v.type !== 'null') ?? variants[0]!, name, seeds, depth + 1);
  }
  if (Array.isArray(schema.enum)) return schema.enum[0] as Json;
  if ('const' in schema) return schema.const as Json;
  if ('default' in schema && schema.default !== undefined) return schema.default as Json;
  const type = Array.isArray(schema.type) ? (schema.type as string[]).find((t) => t !== 'null') : (schema.type as string | undefined);
  switch (type) {
    case 'object': {
      const out: { [key: string]: Json } = {};
      for (const [key, prop] of Object.entries((schema.properties ?? {}) as Record<string, Schema>)) out[key] = generate(doc, prop, key, seeds, depth + 1);
      return out;
    }
    case 'array':
      return [generate(doc, (schema.items ?? {}) as Schema, name, seeds, depth + 1)];
    case 'integer':
    case 'number': {
      const min = typeof schema.minimum === 'number' ? schema.minimum : typeof schema.exclusiveMinimum === 'number' ? schema.exclusiveMinimum + 1 : 1;
      return Math.max(min, 1);
    }
    case 'boolean':
      return false;
    case 'string': {
      if (schema.format === 'date-time') return new Date(0).toISOString();
      const pattern = typeof schema.pattern === 'string' ? new RegExp(schema.pattern) : null;
      return ['data', 'fuzz1', 'a', '1'].find((c) => !pattern || pattern.test(c)) ?? 'data';
    }
    default:
      return 'data';
  }
}
