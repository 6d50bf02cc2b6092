import type { JournalFacts, JourneyStep } from './journey';

/**
 * The journal's share of an UpdateItem the dedupe store makes anyway: clauses and placeholders
 * (all prefixed `j`) merged into the store's own expression, so the journey costs no extra write.
 */
export interface JournalUpdate {
  set: string[];
  add: string[];
  names: Record<string, string>;
  values: Record<string, unknown>;
}

/** What the ingress told about the payload (SQS attributes), kept on the record: the derived `received` step. */
export interface ReceivedFacts {
  requestId?: string;
  bytes?: number;
}

/**
 * With the claim: the index attributes and the normalised event, written only if absent (the first
 * claim's values stay), and the steps appended.
 */
export function claimJournal(facts: JournalFacts & ReceivedFacts, steps: JourneyStep[], now: Date = new Date()): JournalUpdate {
  const update = stepsJournal(steps, undefined, now);
  const once: Record<string, string | number | undefined> = {
    lineId: facts.lineId,
    receivedAt: facts.receivedAt,
    kind: facts.kind,
    type: facts.type,
    wamid: facts.wamid,
    contactHash: facts.contactHash,
    contact: facts.contact,
    event: facts.event,
    requestId: facts.requestId,
    bytes: facts.bytes,
    metaAt: facts.metaAt,
  };
  for (const [name, value] of Object.entries(once)) {
    // A GSI key attribute may not be an empty string: absent values are not written at all.
    if (value === undefined || value === '') continue;
    update.names[`#j_${name}`] = name;
    update.values[`:j_${name}`] = value;
    update.set.push(`#j_${name} = if_not_exists(#j_${name}, :j_${name})`);
  }
  return update;
}

/** With complete, release or park: the steps appended, `updatedAt` moved, and counters added. */
export function stepsJournal(steps: JourneyStep[], counters?: { retries?: number }, now: Date = new Date()): JournalUpdate {
  const update: JournalUpdate = {
    set: ['#j_updatedAt = :j_updatedAt'],
    add: [],
    names: { '#j_updatedAt': 'updatedAt' },
    values: { ':j_updatedAt': (steps.at(-1)?.at ?? now.toISOString()) },
  };
  if (steps.length > 0) {
    update.names['#j_journey'] = 'journey';
    update.values[':j_steps'] = steps;
    update.values[':j_empty'] = [];
    update.set.push('#j_journey = list_append(if_not_exists(#j_journey, :j_empty), :j_steps)');
  }
  if (counters?.retries) {
    update.names['#j_retries'] = 'retries';
    update.values[':j_retries'] = counters.retries;
    update.add.push('#j_retries :j_retries');
  }
  return update;
}

/**
 * `expression` (the store's UpdateExpression) with the journal's SET and ADD clauses merged in. Each
 * clause keyword may appear once in an UpdateExpression, so they join the store's own.
 */
export function mergeUpdateExpression(expression: string, journal: JournalUpdate | undefined): string {
  if (!journal) return expression;
  // The stores' expressions and the journal's clauses come in a handful of shapes: each merged once.
  const key = `${expression}\n${journal.set.join(',')}\n${journal.add.join(',')}`;
  let merged = mergedExpressions.get(key);
  if (merged === undefined) {
    merged = mergeClauses(expression, journal);
    if (mergedExpressions.size < 1024) mergedExpressions.set(key, merged);
  }
  return merged;
}

const mergedExpressions = new Map<string, string>();

function mergeClauses(expression: string, journal: JournalUpdate): string {
  const clauses = new Map<string, string[]>();
  const parts = expression.split(/\b(SET|REMOVE|ADD|DELETE)\b/).map((p) => p.trim());
  for (let i = 1; i < parts.length; i += 2) {
    const keyword = parts[i]!;
    const body = parts[i + 1] ?? '';
    clauses.set(keyword, [...(clauses.get(keyword) ?? []), ...(body ? [body] : [])]);
  }
  if (journal.set.length > 0) clauses.set('SET', [...(clauses.get('SET') ?? []), ...journal.set]);
  if (journal.add.length > 0) clauses.set('ADD', [...(clauses.get('ADD') ?? []), ...journal.add]);
  return ['SET', 'REMOVE', 'ADD', 'DELETE']
    .filter((k) => (clauses.get(k) ?? []).length > 0)
    .map((k) => `${k} ${clauses.get(k)!.join(', ')}`)
    .join(' ');
}
