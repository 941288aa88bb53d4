/**
 * Rules for request input that hold on every route, current and future:
 *
 * - JSON bodies are validated strictly: a JSON `true` is not the member number 1, `["x"]` is not the
 *   email "x". Only text inputs (query string, path, form body) are coerced, because there every
 *   value arrives as a string.
 * - A number read from text is plain decimal digits (`0x10`, `1e3`, ` 1`, `+1`, `Infinity` are refused,
 *   though JavaScript's Number() would take them) and within the safe-integer range.
 * - Text carries no control characters (NUL breaks PostgreSQL, others hide text in logs and mail;
 *   newlines and tabs only in the multi-line fields listed below) and no lone UTF-16 surrogates
 *   (they cannot be stored as JSON in the audit log). Numbers are finite and safe integers.
 */
import { parse as parseQueryString } from 'node:querystring';
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv';
import ajvFormats from 'ajv-formats';
import type { FastifyReply, FastifyRequest, FastifySchemaCompiler } from 'fastify';
import { AppError } from './errors.ts';

/** Marks the object a form body was parsed into (non-enumerable, so it is never serialised). */
const FORM_BODY = Symbol('form body');

/** Parses an application/x-www-form-urlencoded body, marked so that its validation coerces types. */
export function parseFormBody(text: string): Record<string, unknown> {
  const fields = parseQueryString(text);
  Object.defineProperty(fields, FORM_BODY, { value: true });
  return fields;
}

function isFormBody(data: unknown): boolean {
  return typeof data === 'object' && data !== null && FORM_BODY in data;
}

/** Fastify's own Ajv options (@fastify/ajv-compiler), except that additional properties are kept for the schema to judge. */
const AJV_OPTIONS: Options = { coerceTypes: 'array', useDefaults: true, removeAdditional: false, addUsedSchema: false, allErrors: false };

const WHOLE_NUMBER_TEXT = /^-?\d{1,16}$/;
const DECIMAL_NUMBER_TEXT = /^-?\d{1,16}(\.\d{1,16})?$/;

type JsonSchema = Record<string, unknown>;

/** 'integer' or 'number' when every branch of `schema` is one (a union that allows text is left as text). */
function numericKind(schema: unknown): 'integer' | 'number' | undefined {
  if (typeof schema !== 'object' || schema === null) return undefined;
  const s = schema as JsonSchema;
  if (s.type === 'integer' || s.type === 'number') return s.type;
  const branches = (s.anyOf ?? s.oneOf) as unknown[] | undefined;
  if (!Array.isArray(branches)) return undefined;
  const kinds = branches.filter((b) => (b as JsonSchema).type !== 'null').map(numericKind);
  if (kinds.length === 0 || kinds.some((k) => k === undefined)) return undefined;
  return kinds.includes('number') ? 'number' : 'integer';
}

/** The top-level numeric properties of an object schema (query strings, paths and forms are flat). */
function numericFields(schema: unknown): [string, 'integer' | 'number'][] {
  const properties = (schema as JsonSchema | undefined)?.properties;
  if (typeof properties !== 'object' || properties === null) return [];
  return Object.entries(properties).flatMap(([name, sub]) => {
    const kind = numericKind(sub);
    return kind ? [[name, kind] as [string, 'integer' | 'number']] : [];
  });
}

function numberTextError(field: string, kind: 'integer' | 'number'): ErrorObject {
  const what = kind === 'integer' ? 'a whole number in plain decimal digits (such as 42)' : 'a number in plain decimal digits (such as 4.2)';
  return { instancePath: `/${field}`, schemaPath: '#/properties', keyword: 'format', params: {}, message: `must be ${what}` };
}

/**
 * A validate function that runs the one `choose` picks for the data, or fails with the error
 * `choose` returns, keeping Ajv's contract (`errors` on the function) that Fastify relies on.
 */
function delegatingValidator(model: ValidateFunction, choose: (data: unknown) => ValidateFunction | ErrorObject): ValidateFunction {
  const validate = ((data: unknown, context?: unknown) => {
    const chosen = choose(data);
    if (typeof chosen !== 'function') {
      validate.errors = [chosen];
      return false;
    }
    const valid = chosen(data, context as never);
    validate.errors = chosen.errors;
    return valid;
  }) as ValidateFunction;
  // Fastify passes the parent object (needed to coerce a whole part) only to functions that have one.
  validate.schemaEnv = model.schemaEnv;
  return validate;
}

/** The first numeric field of `data` whose text is not plain decimal digits in the safe range. */
function numberTextProblem(data: unknown, fields: [string, 'integer' | 'number'][]): ErrorObject | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  for (const [field, kind] of fields) {
    const value = (data as Record<string, unknown>)[field];
    for (const text of Array.isArray(value) ? value : [value]) {
      if (typeof text !== 'string') continue;
      const pattern = kind === 'integer' ? WHOLE_NUMBER_TEXT : DECIMAL_NUMBER_TEXT;
      if (!pattern.test(text) || !Number.isFinite(Number(text)) || (kind === 'integer' && !Number.isSafeInteger(Number(text)))) {
        return numberTextError(field, kind);
      }
    }
  }
  return undefined;
}

/** A validator that coerces text to the schema's types, after checking that numbers are written as plain digits. */
function compileCoercing(ajv: Ajv, schema: JsonSchema): ValidateFunction {
  const validate = ajv.compile(schema);
  const fields = numericFields(schema);
  if (fields.length === 0) return validate;
  return delegatingValidator(validate, (data) => numberTextProblem(data, fields) ?? validate);
}

/**
 * The validator compiler for every route: bodies are validated without coercion unless they came
 * from a form; query strings, path parameters and headers are coerced.
 */
export function createValidatorCompiler(): FastifySchemaCompiler<JsonSchema> {
  const coercing = new Ajv(AJV_OPTIONS);
  const strict = new Ajv({ ...AJV_OPTIONS, coerceTypes: false });
  ajvFormats.default(coercing);
  ajvFormats.default(strict);
  const compile = (schema: JsonSchema, httpPart: string | undefined): ValidateFunction => {
    const coerced = compileCoercing(coercing, schema);
    if (httpPart !== 'body') return coerced;
    const exact = strict.compile(schema);
    return delegatingValidator(exact, (data) => (isFormBody(data) ? coerced : exact));
  };
  // Each route's validator is compiled by the first request that needs it: a server holds no
  // compiled code for the routes nobody has called yet (part of the idle-memory budget).
  return ({ schema, httpPart }) => {
    let compiled: ValidateFunction | undefined;
    const validate = ((data: unknown, context?: unknown) => {
      compiled ??= compile(schema, httpPart);
      const valid = compiled(data, context as never);
      validate.errors = compiled.errors;
      return valid;
    }) as ValidateFunction;
    // Truthy, as on every Ajv function: Fastify then passes the parent, so a whole part can be coerced.
    validate.schemaEnv = {} as ValidateFunction['schemaEnv'];
    return validate;
  };
}

/** Fields whose text may span lines (newlines and tabs allowed); a form sends paper_pubs as JSON text. */
const MULTI_LINE_FIELDS = new Set(['paper_pubs', 'paper_pubs.address']);

/** C0 and C1 control characters and DEL (matching them is the point). */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// eslint-disable-next-line no-control-regex
const CONTROL_EXCEPT_LINES = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Deeper input is refused: no request of the member API nests more than a few levels. */
const MAX_DEPTH = 16;

const PART_NAMES = { params: 'path', query: 'query string', body: 'body' } as const;

function textProblem(text: string, field: string): string | undefined {
  if (LONE_SURROGATE.test(text)) return 'contains broken Unicode text (a lone UTF-16 surrogate)';
  const multiLine = MULTI_LINE_FIELDS.has(field.replace(/\.\d+(?=\.|$)/g, ''));
  if ((multiLine ? CONTROL_EXCEPT_LINES : CONTROL).test(text)) {
    return multiLine ? 'contains a control character (only newlines and tabs are allowed there)' : 'contains a control character (such as NUL, a tab or a newline)';
  }
  return undefined;
}

/** Field path for messages: `paper_pubs.name`, `email`, or `(body)` for the whole part. */
function fieldName(path: string[]): string {
  return path.length === 0 ? '(whole value)' : path.join('.');
}

/** Throws a 400 naming the first field (in `part`) with a control character, a lone surrogate, or a number out of range. */
function checkValue(part: keyof typeof PART_NAMES, root: unknown, fromForm: boolean): void {
  const refuse = (path: string[], problem: string) => {
    throw new AppError('bad_input', `Invalid ${PART_NAMES[part]}: ${fieldName(path)} ${problem}`);
  };
  // Iterative, so deeply nested JSON cannot exhaust the stack.
  const pending: { value: unknown; path: string[] }[] = [{ value: root, path: [] }];
  while (pending.length > 0) {
    const { value, path } = pending.pop()!;
    if (path.length > MAX_DEPTH) refuse(path.slice(0, MAX_DEPTH), `is nested more than ${MAX_DEPTH} levels deep`);
    if (typeof value === 'string') {
      const problem = textProblem(value, path.join('.'));
      if (problem) refuse(path, problem);
      // Forms carry object fields (paper_pubs) as JSON text: the same rules hold inside it.
      if (fromForm && path.length === 1 && value.startsWith('{')) {
        try {
          pending.push({ value: JSON.parse(value) as unknown, path });
        } catch {
          // not JSON: left to the route's own validation
        }
      }
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) refuse(path, 'must be a finite number (1e400 and Infinity are not)');
      if (Number.isInteger(value) && !Number.isSafeInteger(value)) refuse(path, 'is too large a number');
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, child] of Object.entries(value)) {
        const problem = textProblem(key, '');
        if (problem) refuse(path, `has a field name that ${problem}`);
        pending.push({ value: child, path: [...path, key] });
      }
    }
  }
}

/** preValidation hook: the text and number rules above, for path, query string and body alike. */
export function checkInputText(request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void {
  try {
    checkValue('params', request.params, false);
    checkValue('query', request.query, false);
    checkValue('body', request.body, isFormBody(request.body));
  } catch (err) {
    return done(err as Error);
  }
  done();
}
