// The NDJSON file of `chainlog append --file`: one event per line, in the TypeScript API's shape
// ({"eventType": ..., "action": ..., "stream": ...}). The log is append-only, so a mistake in the file can
// never be corrected once written: every line is read and checked before anything is appended, and a
// key or value that would not be stored as written is refused, naming its line, instead of dropped.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { isLosslessNumber, parse as parseLossless, stringify as stringifyLossless } from 'lossless-json';
import type { NewEvent } from '../src/client.js';
import { invalidArgument } from '../src/errors.js';

/** The JSON fields, each with the field that takes the same value as JSON text (NewEvent.payloadJson...). */
export const JSON_FIELDS = [
  ['payload', 'payloadJson'],
  ['before', 'beforeJson'],
  ['after', 'afterJson'],
] as const;

/** The fields whose value is text: everything NewEvent takes but payload, before and after. */
const TEXT_FIELDS = [
  'eventType', 'action', 'stream', 'actor', 'actorType', 'result', 'resourceType', 'resourceId', 'occurredAt', 'sourceIp',
  'requestId', 'payloadJson', 'beforeJson', 'afterJson',
] as const satisfies ReadonlyArray<keyof NewEvent>;

/** Every key a line may hold, in the order help lists them. */
export const EVENT_KEYS: readonly string[] = [...TEXT_FIELDS.slice(0, 8), ...JSON_FIELDS.flat(), ...TEXT_FIELDS.slice(8, 11)];

const LINE_EXAMPLE = 'Write one event per line, e.g. {"eventType": "USER_LOGIN", "action": "LOGIN", "stream": "acme"}.';

/** A line refused: every line is checked before anything is appended, so the message can say so. */
const refuse = (where: string, what: string, hint?: string) => invalidArgument(`${where}: ${what}. Nothing was appended.`, hint);

// A key as it would be spelled in another case style (resource_id, ResourceId, resource-id), to name the key meant.
const fold = (key: string) => key.replace(/[_-]/g, '').toLowerCase();
const KEY_BY_FOLD = new Map(EVENT_KEYS.map((k) => [fold(k), k]));

function unknownKey(where: string, key: string): Error {
  const meant = KEY_BY_FOLD.get(fold(key));
  return refuse(
    where,
    `unknown key ${JSON.stringify(key)}${meant ? ` (did you mean ${JSON.stringify(meant)}?)` : ''}`,
    `A line holds an event as the TypeScript API takes it, with the keys ${EVENT_KEYS.join(', ')}.`,
  );
}

/**
 * One NDJSON line as an event. payload, before and after are passed on as JSON text (payloadJson, ...),
 * so that PostgreSQL stores their numbers exactly as written: lossless-json keeps every number's digits
 * (JSON.parse would round 12345678901234567890 and drop the zeros of 1.0), and it refuses a key given
 * twice with different values, which JSON.parse would silently resolve to the last. A text field given
 * as a number (a resourceId of 42) is stored as its digits as written.
 */
export function parseEventLine(line: string, where: string): NewEvent {
  let value: unknown;
  try {
    value = parseLossless(line);
  } catch (e) {
    throw refuse(where, `not valid JSON (${(e as Error).message})`, LINE_EXAMPLE);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw refuse(where, 'not a JSON object', LINE_EXAMPLE);
  const given = value as Record<string, unknown>;
  for (const key of Object.keys(given)) if (!EVENT_KEYS.includes(key)) throw unknownKey(where, key);

  const event: Record<string, unknown> = {};
  for (const key of TEXT_FIELDS) {
    const v = given[key];
    if (v === undefined || v === null) continue;
    if (typeof v === 'string') event[key] = v;
    else if (isLosslessNumber(v) && !key.endsWith('Json')) event[key] = v.value;
    else throw refuse(where, `${key} must be a string, not ${stringifyLossless(v)}`);
  }
  for (const [key, textKey] of JSON_FIELDS) {
    const v = given[key];
    if (v === undefined) continue;
    if (event[textKey] !== undefined && v !== null) throw refuse(where, `give ${key} or ${textKey}, not both`);
    // JSON null stays null (SQL NULL); any other value goes on as the text it was written as.
    if (v === null) event[key] = null;
    else event[textKey] = stringifyLossless(v);
  }
  return event as unknown as NewEvent;
}

/** True when `event` gives `field` (a JSON field also through its text form): a value, not null or absent. */
function gives(event: NewEvent, field: keyof NewEvent): boolean {
  const text = JSON_FIELDS.find(([key]) => key === field)?.[1];
  return (event[field] !== undefined && event[field] !== null) || (text !== undefined && event[text] !== undefined && event[text] !== null);
}

/**
 * Fills in each field an event leaves out (absent or null, which the API reads the same) from
 * `defaults`, the command line's event options. A JSON field's default may be its text (payloadJson).
 */
export function withDefaults(event: NewEvent, defaults: Partial<NewEvent>): NewEvent {
  const filled: NewEvent = { ...event };
  for (const [key, value] of Object.entries(defaults) as Array<[keyof NewEvent, unknown]>) {
    if (value === undefined || value === null) continue;
    const field = (JSON_FIELDS.find(([, text]) => text === key)?.[0] ?? key) as keyof NewEvent;
    if (!gives(filled, field)) (filled as unknown as Record<string, unknown>)[key] = value;
  }
  return filled;
}

/** Reads and checks every line of an NDJSON file of events, or of stdin for "-". */
export async function readEvents(file: string): Promise<NewEvent[]> {
  const input = file === '-' ? process.stdin : createReadStream(file);
  const events: NewEvent[] = [];
  let n = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    n++;
    if (line.trim() === '') continue;
    events.push(parseEventLine(line, `${file === '-' ? 'stdin' : file}, line ${n}`));
  }
  return events;
}
