import { DEADLINE_PASSED, ENTRY_NOT_PREPARED, SqsBatcher, type SqsBatchResponse } from '../../src/queue/sqs-batcher';

/** The batcher's own rules (order per group, preparation, deadlines), over a recording `send`; the real SendMessageBatch is in test/ingress/producer*.test.ts. */
type Entry = { name: string };

function recordingBatcher(answer: (entries: (Entry & { Id: string })[]) => Promise<SqsBatchResponse> | SqsBatchResponse = (entries) => ({ Successful: entries.map((e) => ({ Id: e.Id, MessageId: `id-${e.name}` })) })) {
  const calls: string[][] = [];
  const batcher = new SqsBatcher<Entry>({
    lingerMs: 1,
    retryDelayMs: 1,
    send: async (entries) => {
      calls.push(entries.map((e) => e.name));
      return answer(entries);
    },
  });
  return { batcher, calls };
}

describe('SqsBatcher with groups', () => {
  it('holds a group behind an entry still being prepared, while other groups go; then keeps add order', async () => {
    const { batcher, calls } = recordingBatcher();
    let upload!: (entry: Entry) => void;
    const uploading = new Promise<Entry>((resolve) => (upload = resolve));
    const results = [batcher.add(uploading, { group: 'alice' }), batcher.add({ name: 'alice-2' }, { group: 'alice' }), batcher.add({ name: 'bob-1' }, { group: 'bob' })];
    await new Promise((r) => setTimeout(r, 20));
    expect(calls).toEqual([['bob-1']]);
    upload({ name: 'alice-1' });
    await batcher.flush();
    expect(calls).toEqual([['bob-1'], ['alice-1', 'alice-2']]);
    expect(await Promise.all(results)).toEqual([
      { ok: true, messageId: 'id-alice-1' },
      { ok: true, messageId: 'id-alice-2' },
      { ok: true, messageId: 'id-bob-1' },
    ]);
  });

  it('a preparation that fails answers ENTRY_NOT_PREPARED and releases its group', async () => {
    const { batcher, calls } = recordingBatcher();
    const failed = batcher.add(Promise.reject(new Error('S3 down')), { group: 'alice' });
    const next = batcher.add({ name: 'alice-2' }, { group: 'alice' });
    expect(await failed).toEqual({ ok: false, code: ENTRY_NOT_PREPARED, message: 'S3 down' });
    expect(await next).toEqual({ ok: true, messageId: 'id-alice-2' });
    expect(calls).toEqual([['alice-2']]);
  });

  it('a retried entry goes out before its group\'s later entries, and retries stop at its deadline', async () => {
    let failFirst = true;
    const { batcher, calls } = recordingBatcher((entries) => {
      if (!failFirst) return { Successful: entries.map((e) => ({ Id: e.Id })) };
      failFirst = false;
      return { Successful: [], Failed: [{ Id: entries[0]!.Id, Code: 'InternalError', SenderFault: false }] };
    });
    const first = batcher.add({ name: 'a-1' }, { group: 'a' });
    await new Promise((r) => setTimeout(r, 0));
    const second = batcher.add({ name: 'a-2' }, { group: 'a' });
    await batcher.flush();
    expect(await Promise.all([first, second])).toEqual([{ ok: true }, { ok: true }]);
    expect(calls).toEqual([['a-1'], ['a-1', 'a-2']]);

    const never = recordingBatcher(() => new Promise<SqsBatchResponse>(() => undefined));
    const started = Date.now();
    expect(await never.batcher.add({ name: 'x' }, { deadline: Date.now() + 100 })).toMatchObject({ ok: false, code: DEADLINE_PASSED });
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
