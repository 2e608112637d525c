// A plain-text description of everything chainlog installs: tables and columns, constraints, indexes,
// functions, triggers, views, grants. Checked in as sql/schema.snapshot.txt so that every change to the
// database's shape shows up in review; test/schema.test.ts fails when it is stale.
import type pg from 'pg';

const QUERIES: Array<[title: string, sql: string]> = [
  [
    'columns',
    `select c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
            || case when a.attnotnull then ' not null' else '' end
            || case when a.attidentity <> '' then ' identity ' || a.attidentity::text else '' end
            || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
       from pg_attribute a
       join pg_class c on c.oid = a.attrelid
       left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
      where c.relnamespace = 'chainlog'::regnamespace and c.relkind in ('r', 'v') and a.attnum > 0 and not a.attisdropped
      order by c.relname, a.attnum`,
  ],
  [
    'constraints',
    // NOT NULL constraints appear in pg_constraint from PostgreSQL 18 on; the columns section shows them.
    `select conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
       from pg_constraint where connamespace = 'chainlog'::regnamespace and contype <> 'n' order by 1`,
  ],
  [
    'indexes',
    `select indexrelid::regclass::text || ' on ' || indrelid::regclass::text || ' ' ||
            regexp_replace(pg_get_indexdef(indexrelid), '^.* USING ', 'USING ')
       from pg_index where indrelid in (select oid from pg_class where relnamespace = 'chainlog'::regnamespace) order by 1`,
  ],
  [
    'functions',
    `select p.oid::regprocedure::text || ' returns ' || pg_get_function_result(p.oid)
            || ' ' || l.lanname
            || case p.provolatile when 'i' then ' immutable' when 's' then ' stable' else ' volatile' end
            || case when p.prosecdef then ' security definer' else '' end
            || coalesce(' set ' || array_to_string(p.proconfig, ', '), '')
       from pg_proc p join pg_language l on l.oid = p.prolang
      where p.pronamespace in ('chainlog'::regnamespace, 'chainlog_guard'::regnamespace) order by 1`,
  ],
  [
    'triggers',
    `select tgrelid::regclass::text || ' ' || tgname || ' ' || regexp_replace(pg_get_triggerdef(oid), '^.* (BEFORE|AFTER) ', '\\1 ')
       from pg_trigger where not tgisinternal and tgrelid in (select oid from pg_class where relnamespace = 'chainlog'::regnamespace)
      order by 1`,
  ],
  [
    'event triggers',
    `select evtname || ' on ' || evtevent::text || ' ' || evtfoid::regproc::text || coalesce(' tags ' || array_to_string(evttags, ', '), '')
       from pg_event_trigger where evtfoid::regproc::text like 'chainlog%' order by 1`,
  ],
  [
    'table grants',
    `select table_name || ' ' || grantee || ' ' || string_agg(privilege_type, ', ' order by privilege_type)
       from information_schema.role_table_grants
      where table_schema = 'chainlog' and grantee like 'chainlog\\_%' group by table_name, grantee order by 1`,
  ],
  [
    'function grants',
    `select p.oid::regprocedure::text || ' ' || r.rolname
       from pg_proc p cross join lateral aclexplode(p.proacl) x join pg_roles r on r.oid = x.grantee
      where p.pronamespace = 'chainlog'::regnamespace and r.rolname like 'chainlog\\_%' and x.privilege_type = 'EXECUTE'
      order by 1`,
  ],
];

/** Describes the installed chainlog schema as stable, sorted text (identical on PostgreSQL 15 and 18). */
export async function schemaSnapshot(db: Pick<pg.ClientBase, 'query'>): Promise<string> {
  const sections: string[] = [];
  for (const [title, sql] of QUERIES) {
    const { rows } = await db.query<{ line: string }>(`select line from (${sql}) as s(line)`);
    sections.push(`## ${title}\n${rows.map((r) => r.line).join('\n')}\n`);
  }
  return sections.join('\n');
}
