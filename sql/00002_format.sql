-- chainlog 2: the canonical encoding of an event, format version 1 (docs/FORMAT.md, byte by byte).
--
-- These are the only place the format is written in SQL: the chain trigger and verify() both call
-- them, and the test vectors in test/vectors/format-v1.json check them against the TypeScript
-- implementation in src/format.ts.
--
-- Why these functions have no `set search_path` (the exception to chainlog's rule): they are
-- LANGUAGE sql so the planner inlines them into the trigger and into verify()'s scan, and a SET clause
-- would prevent inlining and cost a settings save/restore per row. Every function and operator in
-- them is therefore written with its schema, and their bodies are parsed when they are created (RETURN
-- ...), so neither search_path nor a look-alike type in pg_temp can change what they compute.
-- They are declared STABLE, not IMMUTABLE, only because convert_to() is STABLE and the planner
-- does not inline an IMMUTABLE function whose body is less so.

-- A text field: its UTF-8 bytes, then a 0x00 terminator. SQL NULL is the single byte 0xFF. Neither
-- byte occurs inside UTF-8 text stored in PostgreSQL (text cannot hold NUL; UTF-8 never uses 0xFF),
-- so the fields need no length prefix: this costs half the function calls of one, per row.
create function chainlog.text_field(value text) returns bytea
language sql stable parallel safe
return coalesce(pg_catalog.convert_to(value, 'UTF8') operator(pg_catalog.||) '\x00'::bytea, '\xff'::bytea);

-- A timestamp field: 0x01, then microseconds since 2000-01-01 00:00:00 UTC as int64 big-endian
-- (PostgreSQL's own binary form, which no session setting changes). SQL NULL is the single byte 0x00.
create function chainlog.timestamp_field(value timestamptz) returns bytea
language sql stable parallel safe
return coalesce('\x01'::bytea operator(pg_catalog.||) pg_catalog.timestamptz_send(value), '\x00'::bytea);

-- An inet field: PostgreSQL's binary inet form: family (2 = IPv4, 3 = IPv6), prefix bits, is_cidr (0),
-- address length (4 or 16), address bytes. SQL NULL is the single byte 0x00 (no family is 0).
create function chainlog.inet_field(value inet) returns bytea
language sql stable parallel safe
return coalesce(pg_catalog.inet_send(value), '\x00'::bytea);

create function chainlog.data_digest(payload jsonb, before jsonb, after jsonb) returns bytea
language sql stable parallel safe
-- jsonb's text form never contains a raw newline (strings escape it) and is never empty, so
-- "payload LF before LF after", with an empty string for SQL NULL, is unambiguous. Each value is
-- hashed exactly as PostgreSQL stores and prints it; nothing is re-serialized.
return pg_catalog.sha256(pg_catalog.convert_to(
  coalesce(payload::text, '') operator(pg_catalog.||) E'\n' operator(pg_catalog.||)
  coalesce(before::text, '')  operator(pg_catalog.||) E'\n' operator(pg_catalog.||)
  coalesce(after::text, ''), 'UTF8'));

comment on function chainlog.data_digest(jsonb, jsonb, jsonb) is
  'SHA-256 of an event''s payload, before and after, as defined in docs/FORMAT.md. The chain commits to this digest instead of the raw JSON.';

create function chainlog.canonical_bytes(
  format_version smallint, prev_hash bytea, seq bigint, recorded_at timestamptz, data_digest bytea,
  stream text, occurred_at timestamptz, actor text, actor_type text, event_type text, action text,
  result text, resource_type text, resource_id text, source_ip inet, request_id text)
returns bytea
language sql stable parallel safe
-- A fixed 82-byte head (version, prev_hash, seq, recorded_at, data_digest), then the optional and
-- variable fields in a fixed order, each self-delimiting: no two different events encode alike.
return pg_catalog.int2send(format_version)
  operator(pg_catalog.||) prev_hash
  operator(pg_catalog.||) pg_catalog.int8send(seq)
  operator(pg_catalog.||) pg_catalog.timestamptz_send(recorded_at)
  operator(pg_catalog.||) data_digest
  operator(pg_catalog.||) chainlog.timestamp_field(occurred_at)
  operator(pg_catalog.||) chainlog.inet_field(source_ip)
  operator(pg_catalog.||) chainlog.text_field(stream)
  operator(pg_catalog.||) chainlog.text_field(actor)
  operator(pg_catalog.||) chainlog.text_field(actor_type)
  operator(pg_catalog.||) chainlog.text_field(event_type)
  operator(pg_catalog.||) chainlog.text_field(action)
  operator(pg_catalog.||) chainlog.text_field(result)
  operator(pg_catalog.||) chainlog.text_field(resource_type)
  operator(pg_catalog.||) chainlog.text_field(resource_id)
  operator(pg_catalog.||) chainlog.text_field(request_id);

comment on function chainlog.canonical_bytes(smallint, bytea, bigint, timestamptz, bytea, text, timestamptz, text, text, text, text, text, text, text, inet, text) is
  'The canonical encoding of an event, format version 1 (docs/FORMAT.md). hash = sha256(canonical_bytes(...)).';

-- The hash of the event before seq 1.
create function chainlog.genesis_hash() returns bytea
language sql immutable parallel safe
return '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;

comment on function chainlog.genesis_hash() is 'The prev_hash of every stream''s first event: 32 zero bytes.';

comment on function chainlog.text_field(text) is
  'Format v1 encoding of a text field: UTF-8 bytes then 0x00; NULL is 0xFF (docs/FORMAT.md).';
comment on function chainlog.timestamp_field(timestamptz) is
  'Format v1 encoding of an optional timestamp: 0x01 then int64 microseconds since 2000-01-01 UTC; NULL is 0x00 (docs/FORMAT.md).';
comment on function chainlog.inet_field(inet) is
  'Format v1 encoding of an optional inet: PostgreSQL''s binary inet form; NULL is 0x00 (docs/FORMAT.md).';
