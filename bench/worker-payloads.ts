import { randomUUID } from 'node:crypto';

/**
 * Meta webhook bodies for the worker bench: text messages with distinct wamids on one line's
 * phone_number_id, shaped like the fixtures (one contact per change, `messages` in order).
 */
export interface BenchLine {
  phoneNumberId: string;
  displayPhoneNumber: string;
  wabaId: string;
}

/**
 * How many events each payload carries, in queue order. `mix`: half the events one per POST
 * (what Meta usually sends), half in bursts of 10 (Meta batches under load), interleaved so the
 * queue looks the same from start to end.
 */
export function payloadSizes(totalEvents: number, shape: string): number[] {
  const sizes: number[] = [];
  const pattern = shape === 'mix' ? [...Array<number>(10).fill(1), 10] : [Number(shape)];
  if (!pattern.every((n) => Number.isInteger(n) && n >= 1 && n <= 100)) {
    throw new Error(`BENCH_EVENTS_PER_PAYLOAD must be "mix" or an integer 1..100 (got ${shape})`);
  }
  let left = totalEvents;
  for (let i = 0; left > 0; i++) {
    const size = Math.min(left, pattern[i % pattern.length]!);
    sizes.push(size);
    left -= size;
  }
  return sizes;
}

const WORDS = 'hello order store opening hours weekend delivery price thanks please address invoice refund size colour'.split(' ');

/**
 * One payload per size; wamids are unique across the run (`run` keeps separate runs apart too).
 * Payloads cycle over `contacts` senders: on a FIFO queue each is one conversation (message group).
 */
export function textPayloads(line: BenchLine, sizes: number[], run = randomUUID().slice(0, 8), contacts = 250): Buffer[] {
  let sequence = 0;
  return sizes.map((size, p) => {
    const waId = `1555${String(1_000_000 + (p % contacts)).padStart(7, '0')}`;
    const messages = Array.from({ length: size }, () => {
      sequence += 1;
      const words = Array.from({ length: 6 + (sequence % 20) }, (_, w) => WORDS[(sequence + w * 7) % WORDS.length]);
      return {
        from: waId,
        id: `wamid.HBgLMTU1NTAwMDExMTEVAgASGBQ${run}${String(sequence).padStart(8, '0')}AA==`,
        timestamp: String(1_730_231_903 + sequence),
        text: { body: words.join(' ') },
        type: 'text',
      };
    });
    return Buffer.from(messagesWebhook(line, waId, `Bench User ${p % contacts}`, messages));
  });
}

/** One change of `messages` from one sender, in the shape Meta posts (the fixtures' shape). */
export function messagesWebhook(line: BenchLine, from: string, name: string, messages: Record<string, unknown>[]): string {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: line.wabaId,
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: line.displayPhoneNumber, phone_number_id: line.phoneNumberId },
              contacts: [{ profile: { name }, wa_id: from }],
              messages,
            },
          },
        ],
      },
    ],
  });
}
