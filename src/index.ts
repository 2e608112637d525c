// chainlog's public TypeScript API. Anything not exported here is internal and may change.

// The handle: append, appendMany, withContext, search, get, verify, verifyAll, verifyOffline, export, streams.
export {
  createChainlog,
  type ActorType,
  type AppendManyResult,
  type AppendResult,
  type CallOptions,
  type Chainlog,
  type CheckpointArg,
  type ChainlogEvent,
  type ChainlogOptions,
  type Db,
  type EventContext,
  type EventResult,
  type ExportArgs,
  type ExportSummary,
  type NewEvent,
  type SearchPage,
  type SearchQuery,
  type StreamHead,
  type StreamInfo,
  type VerifyArgs,
  type VerifyOfflineArgs,
  type VerifyReport,
} from './client.js';

// Errors: one base class, subclasses mapped from SQLSTATE (docs/ERRORS.md).
export {
  ChainlogAppendOnlyError,
  ChainlogAssignedFieldError,
  ChainlogConnectionError,
  ChainlogEncodingError,
  ChainlogError,
  ChainlogFileFormatError,
  ChainlogImmediateConstraintsError,
  ChainlogInvalidArgumentError,
  ChainlogInvalidEventError,
  ChainlogNotInstalledError,
  ChainlogPermissionError,
  ChainlogProtectedDdlError,
  ChainlogRetryableError,
  ChainlogSignatureError,
  ChainlogUnknownStreamError,
  toChainlogError,
  type ChainlogErrorOptions,
} from './errors.js';

// Installing, and a PostgreSQL that needs nothing installed.
export { migrate, SQL_DIR, type MigrateOptions, type MigrateResult } from './migrate.js';
export { startEmbedded, type EmbeddedServer, type StartEmbeddedOptions } from './embedded.js';

// The canonical encoding (format version 1), for checking hashes anywhere.
export {
  canonicalBytes,
  contentMatches,
  dataDigest,
  defaultSha256,
  eventHash,
  eventTextFromColumns,
  FORMAT_VERSION,
  FormatError,
  genesisHash,
  parseEventText,
  type ChainEvent,
  type EventText,
  type Sha256,
} from './format.js';

// Verification without trusting the database's SQL, and exports that can be verified with no database.
export {
  verifyOffline,
  verifyOfflineFile,
  type Problem,
  type VerifyFileOptions,
  type VerifyOfflineOptions,
  type VerifyProgress,
  type VerifyReport as OfflineVerifyReport,
} from './offline-verify.js';
// A head recorded outside the database, checked against the stream as it is now.
export { parseCheckpoint, type Checkpoint } from './checkpoint.js';
// Every stream's head, signed with a key the database never sees, and checked with its public key.
export {
  checkpointsFromHeads,
  generateSigningKeys,
  isSignedCheckpoint,
  keyFingerprint,
  openSignedCheckpoint,
  signCheckpoint,
  SIGNED_CHECKPOINT_FORMAT,
  type CheckpointHeads,
  type HeadEntry,
  type KeyInput,
  type OpenedCheckpoint,
  type SignedCheckpoint,
} from './signed-checkpoint.js';
export { exportEvents, type ExportOptions, type ExportProgress, type ExportResult } from './export.js';
