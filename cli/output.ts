// How the CLI talks: readable tables for people, JSON for machines (--json), progress on stderr.
import type { Writable } from 'node:stream';
import { parse as parseLossless, stringify as stringifyLossless } from 'lossless-json';
import type { ChainlogEvent } from '../src/client.js';

export interface Output {
  /** Results: tables, records, JSON. */
  stdout: Writable & { isTTY?: boolean; columns?: number };
  /** Messages about the run: progress, notes, errors. */
  stderr: Writable & { isTTY?: boolean; columns?: number };
  json: boolean;
}

export const processOutput = (json: boolean): Output => ({ stdout: process.stdout, stderr: process.stderr, json });

function useColor(stream: { isTTY?: boolean }): boolean {
  return Boolean(stream.isTTY) && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
}

const paint = (code: number) => (stream: { isTTY?: boolean }, text: string) =>
  useColor(stream) ? `\u001b[${code}m${text}\u001b[0m` : text;
export const bold = paint(1);
export const dim = paint(2);
export const red = paint(31);
export const green = paint(32);
export const yellow = paint(33);

// Characters a terminal acts on, or shows as nothing, instead of showing them: controls (C0, DEL, C1:
// ESC starts colour, cursor and screen codes; CSI is a one-byte ESC [ to some terminals; CR overwrites
// the line), format characters (the bidirectional overrides and isolates reorder how the rest of a line
// reads; zero-width spaces and joiners, the soft hyphen and the BOM are invisible, so that
// "chain\u200blog.maintenance" would read as chainlog's own stream) and the line and paragraph
// separators.
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;
// The same, less line feed and tab: the layout of a value meant to span lines.
const UNPRINTABLE_MULTILINE = /(?![\n\t])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;
const NAMED_ESCAPES: Record<string, string> = { '\t': '\\t', '\n': '\\n', '\r': '\\r' };

function escapeChar(c: string): string {
  const code = c.codePointAt(0)!;
  const hex = code.toString(16);
  return NAMED_ESCAPES[c] ?? (code <= 0xff ? `\\x${hex.padStart(2, '0')}` : code <= 0xffff ? `\\u${hex.padStart(4, '0')}` : `\\u{${hex}}`);
}

/**
 * A value someone else wrote (a stream name, an actor, a payload, a verify detail, an error message
 * quoting them) as it may reach a terminal: every character a terminal would act on is shown as an
 * escape (\x1b, \r, \u202e), so that a value cannot clear the screen, hide text or fake a line of
 * chainlog's own. multiline keeps line feeds and tabs (a CRLF is a line feed). Apply it to values,
 * before chainlog's own colour is painted around them, never to whole lines.
 */
export function printable(value: string, options: { multiline?: boolean } = {}): string {
  return options.multiline
    ? value.replace(/\r\n/g, '\n').replace(UNPRINTABLE_MULTILINE, escapeChar)
    : value.replace(UNPRINTABLE, escapeChar);
}

export function writeLine(stream: Writable, text = ''): void {
  stream.write(`${text}\n`);
}

/**
 * JSON for machines: bigint as decimal strings, two-space indented, one trailing newline. Numbers read
 * by exactJson() are written with every digit they were stored with.
 */
export function writeJson(out: Output, value: unknown): void {
  writeLine(out.stdout, stringifyLossless(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) ?? 'null');
}

/** Stored JSON text as a value whose numbers keep their digits (JSON.parse rounds them to doubles). */
const exactJson = (text: string | null): unknown => (text === null ? null : parseLossless(text));

/**
 * An event as the CLI prints it in JSON: payload, before and after exactly as stored (an amount of
 * 12345678901234567890 or 0.1000 stays so), without the payloadJson copies of the library's event.
 */
export function eventForJson(event: ChainlogEvent): Omit<ChainlogEvent, 'payloadJson' | 'beforeJson' | 'afterJson'> {
  const { payloadJson, beforeJson, afterJson, ...rest } = event;
  return { ...rest, payload: exactJson(payloadJson), before: exactJson(beforeJson), after: exactJson(afterJson) };
}

/** An event as "name: value" lines for people: payload, before and after as stored, in PostgreSQL's text. */
export function formatEvent(event: ChainlogEvent): string {
  const { payloadJson, beforeJson, afterJson, ...rest } = event;
  return formatRecord(Object.entries({ ...rest, payload: payloadJson, before: beforeJson, after: afterJson }));
}

export interface Column<T> {
  header: string;
  value: (row: T) => string | number | bigint | null | undefined;
  /**
   * chainlog's own colour for a cell (green, red...): given the cell's text once it is printable and
   * cut to width, so the colour codes are neither escaped nor counted in the width.
   */
  paint?: (text: string, row: T) => string;
  /** Right-align (numbers). */
  right?: boolean;
  /** Shrinks to fit the terminal (the widest free-text column). */
  flex?: boolean;
}

/**
 * A plain aligned table. Columns marked flex are cut with an ellipsis to fit a terminal's width. A cell
 * is one line: its whitespace is folded to a space and its other controls escaped (printable()), and
 * widths are those of the escaped text, as the terminal shows it.
 */
export function formatTable<T>(rows: readonly T[], columns: readonly Column<T>[], maxWidth?: number): string {
  const cells = rows.map((row) => columns.map((c) => {
    const v = c.value(row);
    return v === null || v === undefined ? '' : printable(String(v).replace(/\s+/g, ' '));
  }));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const gap = 2;
  if (maxWidth) {
    const total = widths.reduce((a, b) => a + b, 0) + gap * (columns.length - 1);
    const flex = columns.findIndex((c) => c.flex);
    if (total > maxWidth && flex >= 0) {
      widths[flex] = Math.max(columns[flex]!.header.length, 12, widths[flex]! - (total - maxWidth));
    }
  }
  // `row` is the index of the row in `rows`, for paint(); the header has none and is never painted.
  const line = (values: string[], row?: number) =>
    values
      .map((v, i) => {
        const w = widths[i]!;
        const column = columns[i]!;
        const text = v.length > w ? `${v.slice(0, Math.max(0, w - 1))}…` : v;
        const pad = ' '.repeat(Math.max(0, w - text.length));
        const shown = row !== undefined && column.paint ? column.paint(text, rows[row]!) : text;
        return column.right ? pad + shown : shown + pad;
      })
      .join(' '.repeat(gap))
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map((r, row) => line(r, row))].join('\n');
}

export function writeTable<T>(out: Output, rows: readonly T[], columns: readonly Column<T>[]): void {
  writeLine(out.stdout, formatTable(rows, columns, out.stdout.isTTY ? out.stdout.columns : undefined));
}

/** "name: value" lines, names aligned; each value on its one line, made printable(). */
export function formatRecord(entries: ReadonlyArray<[string, unknown]>): string {
  const width = Math.max(...entries.map(([k]) => k.length));
  return entries
    .map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v === null || v === undefined ? '-' : printable(typeof v === 'string' ? v : JSON.stringify(v))}`)
    .join('\n');
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/**
 * A one-line progress display on stderr, redrawn at most 10 times a second; silent unless stderr is
 * a terminal, so logs and pipes stay clean. done() prints the final count and rate either way.
 */
export function progress(out: Output, label: string, total?: number) {
  const started = performance.now();
  const live = Boolean(out.stderr.isTTY) && !out.json;
  let lastDraw = 0;
  let drawn = false;
  const rate = (n: number) => n / Math.max((performance.now() - started) / 1000, 1e-3);
  return {
    update(done: number) {
      if (!live) return;
      const now = performance.now();
      if (now - lastDraw < 100) return;
      lastDraw = now;
      drawn = true;
      const of = total ? ` / ${formatCount(total)} (${Math.floor((100 * done) / total)}%)` : '';
      out.stderr.write(`\r\u001b[2K${label}: ${formatCount(done)}${of}  ${formatCount(Math.round(rate(done)))}/s`);
    },
    /** Clears the live line; returns "N events in T s (R events/s)". */
    done(count: number, unit = 'events'): string {
      if (drawn) out.stderr.write('\r\u001b[2K');
      const seconds = (performance.now() - started) / 1000;
      return `${formatCount(count)} ${unit} in ${seconds.toFixed(2)} s (${formatCount(Math.round(rate(count)))} ${unit}/s)`;
    },
  };
}
