// chainlog's error family: one base class, a few subclasses mapped from SQLSTATE (docs/ERRORS.md).
// Every message says what happened and what to do next; the original error stays in `cause`.

/** Fields PostgreSQL (node-postgres) puts on a server error or a socket error. */
interface DriverError {
  message?: string;
  code?: string;
  hint?: string;
  detail?: string;
  errno?: number;
  address?: string;
  port?: number;
}

export interface ChainlogErrorOptions {
  /** SQLSTATE (e.g. 'LC005'), a Node.js error code (e.g. 'ECONNREFUSED') or a chainlog code. */
  code: string;
  cause?: unknown;
  /** What to do about it. */
  hint?: string;
  /** More about what happened (PostgreSQL's DETAIL, when there is one). */
  detail?: string;
}

/** Base class of every error chainlog throws. `instanceof ChainlogError` catches them all. */
export class ChainlogError extends Error {
  override name = 'ChainlogError';
  /** SQLSTATE, Node.js error code, or a chainlog code such as CHAINLOG_INVALID_ARGUMENT. */
  readonly code: string;
  readonly hint: string | undefined;
  readonly detail: string | undefined;
  /** True when running the same call again may succeed (serialization failure, deadlock). */
  readonly retryable: boolean = false;

  constructor(message: string, options: ChainlogErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code;
    this.hint = options.hint;
    this.detail = options.detail;
  }
}

/** LC001: the row supplied seq, recorded_at, format_version, data_digest, prev_hash or hash. */
export class ChainlogAssignedFieldError extends ChainlogError {
  override name = 'ChainlogAssignedFieldError';
  /** The first field that must not be supplied. */
  readonly field: string | undefined;
  constructor(message: string, options: ChainlogErrorOptions & { field?: string }) {
    super(message, options);
    this.field = options.field;
  }
}

/** LC002: a required field is missing or a value is out of range (result, actor_type, occurred_at, chainlog.source_ip). */
export class ChainlogInvalidEventError extends ChainlogError {
  override name = 'ChainlogInvalidEventError';
  /** The offending field (stream, event_type, action, actor, result, actor_type, occurred_at, source_ip, resource_type, resource_id), when known. */
  readonly field: string | undefined;
  constructor(message: string, options: ChainlogErrorOptions & { field?: string }) {
    super(message, options);
    this.field = options.field;
  }
}

/** LC003: UPDATE, DELETE or TRUNCATE of the log, or a stream head moving backwards. */
export class ChainlogAppendOnlyError extends ChainlogError {
  override name = 'ChainlogAppendOnlyError';
}

/** LC004: DDL that would drop or disable chainlog's protection, outside chainlog.begin_maintenance(). */
export class ChainlogProtectedDdlError extends ChainlogError {
  override name = 'ChainlogProtectedDdlError';
}

/** LC005: verify() was asked about a stream that has neither events nor a recorded head. */
export class ChainlogUnknownStreamError extends ChainlogError {
  override name = 'ChainlogUnknownStreamError';
  readonly stream: string | undefined;
  constructor(message: string, options: ChainlogErrorOptions & { stream?: string }) {
    super(message, options);
    this.stream = options.stream;
  }
}

/** LC006 from the database, or CHAINLOG_INVALID_ARGUMENT when the TypeScript layer rejects an argument first. */
export class ChainlogInvalidArgumentError extends ChainlogError {
  override name = 'ChainlogInvalidArgumentError';
}

/** LC007: events were written after SET CONSTRAINTS ALL IMMEDIATE, which would record a stale stream head. */
export class ChainlogImmediateConstraintsError extends ChainlogError {
  override name = 'ChainlogImmediateConstraintsError';
}

/** LC010: chainlog is being installed into a database whose encoding is not UTF8. */
export class ChainlogEncodingError extends ChainlogError {
  override name = 'ChainlogEncodingError';
}

/** The chainlog schema, a table or a function is missing: chainlog is not installed (or not fully) in this database. */
export class ChainlogNotInstalledError extends ChainlogError {
  override name = 'ChainlogNotInstalledError';
}

/** 42501: the role lacks a privilege chainlog needs (usually a missing GRANT of chainlog_reader / chainlog_writer). */
export class ChainlogPermissionError extends ChainlogError {
  override name = 'ChainlogPermissionError';
}

/** 40001 (serialization failure) or 40P01 (deadlock detected): roll back and run the transaction again. */
export class ChainlogRetryableError extends ChainlogError {
  override name = 'ChainlogRetryableError';
  override readonly retryable = true;
}

/**
 * CHAINLOG_BAD_SIGNATURE: a signed checkpoint was not signed by the public key given, or was changed
 * after it was signed. Its heads cannot be trusted, so nothing was verified against them.
 */
export class ChainlogSignatureError extends ChainlogError {
  override name = 'ChainlogSignatureError';
}

/** The database could not be reached or refused the login. */
export class ChainlogConnectionError extends ChainlogError {
  override name = 'ChainlogConnectionError';
}

/**
 * CHAINLOG_BAD_FILE: a file given to verifyOfflineFile() (`chainlog verify --file`) is not as chainlog's
 * export writes it, so it cannot be verified: an unknown, missing or repeated column or key, invalid JSON
 * or CSV, a value PostgreSQL would not print, invalid UTF-8, a byte order mark, or rows of several
 * streams without `stream`. Which of `line`, `seq` and `field` are set depends on where it was found.
 */
export class ChainlogFileFormatError extends ChainlogError {
  override name = 'ChainlogFileFormatError';
  /** The line of the file (1 is the first; a CSV value holding newlines spans several). */
  readonly line: number | undefined;
  /** The seq of the event on that line, when it could be read. */
  readonly seq: number | undefined;
  /** The column (CSV) or key (NDJSON) at fault. */
  readonly field: string | undefined;
  constructor(message: string, options: ChainlogErrorOptions & { line?: number; seq?: number; field?: string }) {
    super(message, options);
    this.line = options.line;
    this.seq = options.seq;
    this.field = options.field;
  }
}

const SOCKET_CODES: Record<string, string> = {
  ECONNREFUSED: 'the connection was refused: nothing is listening there',
  ENOTFOUND: 'the host name could not be resolved',
  EAI_AGAIN: 'the host name could not be resolved (DNS lookup timed out)',
  ETIMEDOUT: 'the connection timed out',
  ECONNRESET: 'the connection was reset by the server',
  EHOSTUNREACH: 'the host is unreachable',
  ENETUNREACH: 'the network is unreachable',
  EPIPE: 'the connection was closed while writing',
};

const CONNECT_WHAT_TO_DO =
  'Check that PostgreSQL is running and that the connection string (the connectionString option, ' +
  '--database-url or DATABASE_URL) names the right host, port, user and database.';

function where(e: DriverError): string {
  return e.address ? ` at ${e.address}${e.port ? `:${e.port}` : ''}` : '';
}

// Pulls the field name out of the trigger's messages, which start "chainlog: <field> ...".
const FIELD_IN_MESSAGE = /^chainlog: (?:setting chainlog\.)?(stream|event_type|action|actor_type|actor|result|occurred_at|source_ip|resource_type|resource_id|seq|recorded_at|prev_hash|hash|data_digest|format_version)\b/;
const STREAM_IN_MESSAGE = /there is no stream "(.*)"$/;

/** The error itself, or the first error in its `cause` chain that carries a code. */
function withCode(e: unknown): DriverError {
  const first = (typeof e === 'object' && e !== null ? e : { message: String(e) }) as DriverError & { cause?: unknown };
  for (let c: unknown = first, depth = 0; c && typeof c === 'object' && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    if (typeof (c as DriverError).code === 'string') return c as DriverError;
  }
  return first;
}

/** Joins "what happened" and "what to do" into one message. */
function say(what: string, todo: string | undefined): string {
  const text = what.replace(/^chainlog: /, '');
  if (!todo) return text;
  return `${/[.!?]$/.test(text) ? text : `${text}.`} ${todo}`;
}

/**
 * Maps anything thrown by node-postgres (or by chainlog) to a ChainlogError subclass. An error that
 * already is a ChainlogError is returned as is; one chainlog has no class for becomes a plain
 * ChainlogError carrying its SQLSTATE (or Node.js code) in `code` and itself in `cause`.
 */
export function toChainlogError(e: unknown): ChainlogError {
  if (e instanceof ChainlogError) return e;
  const err = withCode(e);
  const message = err.message ?? String(e);
  const code = typeof err.code === 'string' ? err.code : undefined;
  const base = { cause: e, hint: err.hint, detail: err.detail };
  const field = FIELD_IN_MESSAGE.exec(message)?.[1];

  switch (code) {
    case 'LC001':
      return new ChainlogAssignedFieldError(say(message, err.hint), { ...base, code, field });
    case 'LC002':
      return new ChainlogInvalidEventError(say(message, err.hint), { ...base, code, field });
    case 'LC003':
      return new ChainlogAppendOnlyError(say(message, err.hint), { ...base, code });
    case 'LC004':
      return new ChainlogProtectedDdlError(say(message, err.hint), { ...base, code });
    case 'LC005':
      return new ChainlogUnknownStreamError(say(message, err.hint), {
        ...base,
        code,
        stream: STREAM_IN_MESSAGE.exec(message)?.[1],
      });
    case 'LC006':
      return new ChainlogInvalidArgumentError(say(message, err.hint), { ...base, code });
    case 'LC007':
      return new ChainlogImmediateConstraintsError(say(message, err.hint), { ...base, code });
    case 'LC010':
      return new ChainlogEncodingError(say(message, err.hint), { ...base, code });
    case '40001':
    case '40P01': {
      const hint = 'Roll back and run the whole transaction again; this is expected under concurrency.';
      const what = code === '40001' ? 'serialization failure' : 'deadlock detected';
      return new ChainlogRetryableError(`${what}: ${message}. ${hint}`, { ...base, code, hint });
    }
    case '3F000': // invalid_schema_name
    case '42P01': // undefined_table
    case '42883': // undefined_function
      if (/chainlog/.test(message)) {
        const hint = 'Install or upgrade chainlog in this database: run `npx chainlog migrate` or call migrate() from the package.';
        return new ChainlogNotInstalledError(`chainlog is not installed in this database (${message}). ${hint}`, {
          ...base,
          code,
          hint,
        });
      }
      break;
    case '42501': {
      const hint =
        'Grant the role what it needs: GRANT chainlog_reader (read, verify) or chainlog_writer (append) TO your_role.';
      return new ChainlogPermissionError(`${message}. ${hint}`, { ...base, code, hint });
    }
    case '25P02': {
      const hint = 'An earlier statement failed in this transaction: ROLLBACK (or ROLLBACK TO SAVEPOINT) before calling chainlog again.';
      return new ChainlogError(`${message}. ${hint}`, { ...base, code, hint });
    }
    case '28P01': // invalid_password
    case '28000': // invalid_authorization_specification (pg_hba.conf has no entry, etc.)
      return new ChainlogConnectionError(
        `PostgreSQL refused the login: ${message}. Check the user name and password in the connection string, and pg_hba.conf on the server.`,
        { ...base, code, hint: CONNECT_WHAT_TO_DO },
      );
    case '3D000': // invalid_catalog_name
      return new ChainlogConnectionError(
        `${message}. Create the database (createdb, or CREATE DATABASE ... ENCODING 'UTF8') or fix the database name in the connection string.`,
        { ...base, code, hint: CONNECT_WHAT_TO_DO },
      );
    case '53300': // too_many_connections
    case '57P03': // cannot_connect_now (starting up, shutting down, in recovery)
      return new ChainlogConnectionError(`${message}. Wait a moment and try again, or lower the pool size.`, {
        ...base,
        code,
        hint: 'Retry later.',
      });
  }

  if (code && SOCKET_CODES[code]) {
    return new ChainlogConnectionError(
      `Could not connect to PostgreSQL${where(err)}: ${SOCKET_CODES[code]}. ${CONNECT_WHAT_TO_DO}`,
      { ...base, code, hint: CONNECT_WHAT_TO_DO },
    );
  }
  if ((code && code.startsWith('08')) || code === '57P01' || /^Connection terminated|connection timeout|SASL: |password must be a string/i.test(message)) {
    return new ChainlogConnectionError(`Lost or could not open the connection to PostgreSQL: ${message}. ${CONNECT_WHAT_TO_DO}`, {
      ...base,
      code: code ?? 'CHAINLOG_CONNECTION',
      hint: CONNECT_WHAT_TO_DO,
    });
  }
  return new ChainlogError(say(message, err.hint), { ...base, code: code ?? 'CHAINLOG_UNEXPECTED' });
}

/** Thrown by the TypeScript layer for a bad argument before anything reaches the database. */
export function invalidArgument(message: string, hint?: string): ChainlogInvalidArgumentError {
  return new ChainlogInvalidArgumentError(hint ? `${message} ${hint}` : message, {
    code: 'CHAINLOG_INVALID_ARGUMENT',
    hint,
  });
}
