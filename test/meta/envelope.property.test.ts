import fc from 'fast-check';
import type { WhatsAppEvent } from '../../src/meta/event';
import { envelopeToEvents } from '../../src/meta/envelope';
import { webhookFixtures } from '../support/fixtures';
import { EVENT_KINDS } from './fixture-events';

const KEY_SHAPES = [
  /^msg#.+#.+$/s,
  /^status#.+#.+$/s,
  /^(message|status|error|account|unknown)#sha256:[0-9a-f]{64}$/,
];

/** What is wrong with an event, if anything: checked by hand, since thousands of expect calls are slow. */
function problemsOf(event: WhatsAppEvent | undefined): string[] {
  if (event === undefined) return ['a hole in the list'];
  const problems: string[] = [];
  if (typeof event.key !== 'string' || event.key.length === 0) problems.push('empty key');
  else if (!KEY_SHAPES.some((shape) => shape.test(event.key))) problems.push(`key shape ${event.key}`);
  else if (!/^(msg|status)#/.test(event.key) && !event.key.startsWith(`${event.kind}#`)) {
    problems.push(`key ${event.key} of kind ${event.kind}`);
  }
  if (!EVENT_KINDS.includes(event.kind)) problems.push(`kind ${String(event.kind)}`);
  if (typeof event.field !== 'string') problems.push('field not a string');
  for (const optional of [event.timestamp, event.wabaId, event.phoneNumberId, event.message?.text]) {
    if (optional !== undefined && typeof optional !== 'string') problems.push(`not a string: ${typeof optional}`);
  }
  return problems;
}

/** What every event list must satisfy, whatever came in. */
function expectWellFormed(events: WhatsAppEvent[]): void {
  expect(Array.isArray(events) && events.length > 0).toBe(true);
  expect(Array.from(events, problemsOf).flat()).toEqual([]);
}

const everyKind = {
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withSparseArray: true,
  withTypedArray: true,
};
const everyValue = fc.anything(everyKind);
/** Shallower, for the many slots of a generated envelope: deep values there only cost time. */
const slotValue = fc.anything({ ...everyKind, maxDepth: 2 });

describe('envelopeToEvents never throws', () => {
  it('for anything at all', () => {
    fc.assert(
      fc.property(everyValue, (payload) => {
        expectWellFormed(envelopeToEvents(payload));
      }),
      { numRuns: 2000 },
    );
  });

  it('for anything placed where the envelope expects entries, changes and items', () => {
    const envelope = fc.record({
      object: fc.oneof(fc.constant('whatsapp_business_account'), slotValue),
      entry: fc.oneof(
        slotValue,
        fc.array(
          fc.oneof(
            slotValue,
            fc.record({
              id: fc.oneof(fc.string(), slotValue),
              changes: fc.oneof(
                slotValue,
                fc.array(
                  fc.record({
                    field: fc.oneof(fc.constantFrom('messages', 'account_update', 'history', 'group_x'), slotValue),
                    value: fc.oneof(
                      slotValue,
                      fc.record({
                        metadata: fc.oneof(slotValue, fc.record({ phone_number_id: fc.oneof(fc.string(), slotValue) })),
                        contacts: slotValue,
                        messages: fc.oneof(slotValue, fc.array(slotValue)),
                        statuses: fc.oneof(slotValue, fc.array(slotValue)),
                        errors: fc.oneof(slotValue, fc.array(slotValue)),
                      }),
                    ),
                  }),
                ),
              ),
            }),
          ),
        ),
      ),
    });
    fc.assert(
      fc.property(envelope, (payload) => {
        expectWellFormed(envelopeToEvents(payload));
      }),
      { numRuns: 1000 },
    );
  });

  it('for every fixture with random parts replaced, removed or wrapped', () => {
    const fixtures = webhookFixtures().map((f) => f.json);
    const mutation = fc.record({
      at: fc.nat(),
      op: fc.constantFrom('replace', 'delete', 'wrap-in-array', 'unwrap-array', 'stringify'),
      replacement: everyValue,
    });
    fc.assert(
      fc.property(fc.constantFrom(...fixtures), fc.array(mutation, { minLength: 1, maxLength: 6 }), (fixture, mutations) => {
        const payload = structuredClone(fixture);
        for (const m of mutations) mutate(payload, m);
        const events = envelopeToEvents(payload);
        expectWellFormed(events);
        // Pure: the same input gives the same events.
        expect(envelopeToEvents(payload).map((e) => e.key)).toEqual(events.map((e) => e.key));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('nothing is dropped', () => {
  it('gives exactly one event per message, status and error item, whatever the items are', () => {
    const items = fc.array(slotValue, { maxLength: 4 });
    const change = fc.record({
      messages: fc.array(slotValue, { minLength: 1, maxLength: 4 }),
      statuses: items,
      errors: items,
    });
    const entries = fc.array(fc.array(change, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 3 });
    fc.assert(
      fc.property(entries, (shape) => {
        const payload = {
          object: 'whatsapp_business_account',
          entry: shape.map((changes, e) => ({
            id: `waba-${e}`,
            changes: changes.map((value) => ({
              field: 'messages',
              value: { metadata: { phone_number_id: `pn-${e}` }, ...value },
            })),
          })),
        };
        const expected = shape.flat().reduce((n, v) => n + v.messages.length + v.statuses.length + v.errors.length, 0);
        const events = envelopeToEvents(payload);
        expect(events).toHaveLength(expected);
        expectWellFormed(events);
      }),
      { numRuns: 500 },
    );
  });
});

type Mutation = { at: number; op: string; replacement: unknown };

/** Applies one structural change at the `at`-th place (modulo the number of places) of the JSON. */
function mutate(root: unknown, { at, op, replacement }: Mutation): void {
  const places = placesOf(root);
  if (places.length === 0) return;
  const [parent, name] = places[at % places.length]!;
  const current = parent[name];
  switch (op) {
    case 'replace':
      parent[name] = replacement;
      break;
    case 'delete':
      if (Array.isArray(parent)) parent.splice(Number(name), 1);
      else delete parent[name];
      break;
    case 'wrap-in-array':
      parent[name] = [current];
      break;
    case 'unwrap-array':
      parent[name] = Array.isArray(current) ? current[0] : current;
      break;
    case 'stringify':
      parent[name] = JSON.stringify(current) ?? 'undefined';
      break;
  }
}

type Container = Record<string | number, unknown>;

function placesOf(node: unknown, places: [Container, string | number][] = []): [Container, string | number][] {
  // Only JSON containers: boxed strings, typed arrays and the like put in by earlier mutations
  // have read-only or exotic members.
  const prototype = node !== null && typeof node === 'object' ? Object.getPrototypeOf(node) : undefined;
  if (!Array.isArray(node) && prototype !== Object.prototype && prototype !== null) return places;
  const container = node as Container;
  const names = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(container);
  for (const name of names) {
    places.push([container, name]);
    placesOf(container[name], places);
  }
  return places;
}
