import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A minimal in-memory SQS for benchmarks, speaking the SDK's JSON protocol (x-amz-target
 * AmazonSQS.*): SendMessage, SendMessageBatch, ReceiveMessage, DeleteMessage(Batch),
 * ChangeMessageVisibility(Batch), GetQueueAttributes, PurgeQueue. What matters for latency:
 * a long poll is answered as soon as a message becomes receivable, as SQS does (local-aws-sqs
 * answers concurrent long polls only when their wait ends, and has no option to change that).
 * FIFO queues (name ending .fifo) hand out no message of a group while another of it is in flight,
 * and drop a MessageDeduplicationId seen in the last 5 minutes. Deletes and visibility changes take
 * only a message's latest receipt handle, and a visibility change only a message in flight (per
 * entry in the batch calls, as SQS answers). Only the body's MD5 is computed
 * (the SDK checks it); there is no redrive policy, retention (only reported) or delay.
 */

interface StoredMessage {
  id: string;
  body: string;
  md5: string;
  attributes: Record<string, unknown>;
  groupId?: string;
  sentAt: number;
  receiveCount: number;
  visibleAt: number;
  receipt?: string;
}

interface Waiter {
  max: number;
  visibilityMs: number;
  done: (messages: StoredMessage[]) => void;
}

class FastQueue {
  readonly messages: StoredMessage[] = [];
  /** Milliseconds from send to first receive, per message: where a message waited. */
  readonly dwellMs: number[] = [];
  readonly waiters: Waiter[] = [];
  readonly dedup = new Map<string, number>();
  /** Held: receives get nothing (a bench measuring the sender side alone); messages stay queued. */
  held = false;
  private timer?: NodeJS.Timeout;

  constructor(
    readonly name: string,
    readonly defaultVisibilityMs: number,
  ) {}

  get fifo(): boolean {
    return this.name.endsWith('.fifo');
  }

  send(body: string, attributes: Record<string, unknown>, groupId?: string, dedupId?: string): StoredMessage {
    const now = Date.now();
    const md5 = createHash('md5').update(body, 'utf8').digest('hex');
    if (this.fifo && dedupId) {
      const seen = this.dedup.get(dedupId);
      // Within the 5-minute window a repeat is accepted and dropped, whether or not the first is still queued.
      if (seen !== undefined && now - seen < 5 * 60_000) return { id: `dedup-${dedupId}`, body, md5, attributes: {}, sentAt: seen, receiveCount: 0, visibleAt: now };
      this.dedup.set(dedupId, now);
    }
    const message: StoredMessage = {
      id: randomUUID(),
      body,
      md5,
      attributes,
      groupId,
      sentAt: now,
      receiveCount: 0,
      visibleAt: now,
    };
    this.messages.push(message);
    this.wake();
    return message;
  }

  /** Receivable now: visible, and (FIFO) the first of a group with nothing of it in flight. */
  take(max: number, visibilityMs: number): StoredMessage[] {
    if (this.held) return [];
    const now = Date.now();
    const busyGroups = new Set<string>();
    if (this.fifo) for (const m of this.messages) if (m.visibleAt > now && m.groupId) busyGroups.add(m.groupId);
    const taken: StoredMessage[] = [];
    for (const m of this.messages) {
      if (taken.length >= max) break;
      if (m.visibleAt > now) continue;
      if (this.fifo && m.groupId) {
        if (busyGroups.has(m.groupId)) continue;
        busyGroups.add(m.groupId);
      }
      m.visibleAt = now + visibilityMs;
      if (m.receiveCount === 0) this.dwellMs.push(now - m.sentAt);
      m.receiveCount++;
      m.receipt = `${m.id}:${m.receiveCount}:${randomUUID()}`;
      taken.push(m);
    }
    this.schedule();
    return taken;
  }

  /**
   * Only the latest receipt handle acts, as on SQS: an older one (the message was received again
   * since) is ReceiptHandleIsInvalid. A handle whose message is already gone deletes nothing, quietly.
   */
  delete(receipt: string): void {
    const index = this.messages.findIndex((m) => m.receipt === receipt);
    if (index < 0 && this.messages.some((m) => m.receipt !== undefined && receipt.startsWith(`${m.id}:`))) throw receiptInvalid(receipt);
    if (index >= 0) this.messages.splice(index, 1);
    this.wake();
  }

  /** Only a message in flight, with its latest receipt handle (MessageNotInflight, ReceiptHandleIsInvalid otherwise). */
  changeVisibility(receipt: string, seconds: number): void {
    const message = this.messages.find((m) => m.receipt === receipt);
    if (!message) throw receiptInvalid(receipt);
    if (message.visibleAt <= Date.now()) throw Object.assign(new Error('Message is not in flight'), { type: 'com.amazonaws.sqs#MessageNotInflight', status: 400 });
    message.visibleAt = Date.now() + seconds * 1000;
    this.wake();
  }

  /** Hand whatever is receivable to the waiting long polls, in arrival order. */
  wake(): void {
    while (this.waiters.length > 0) {
      const waiter = this.waiters[0]!;
      const taken = this.take(waiter.max, waiter.visibilityMs);
      if (taken.length === 0) break;
      this.waiters.shift();
      waiter.done(taken);
    }
    this.schedule();
  }

  /** Wake again when the next in-flight message becomes visible (a retry, a crashed worker). */
  private schedule(): void {
    if (this.waiters.length === 0) return;
    const now = Date.now();
    const next = Math.min(...this.messages.filter((m) => m.visibleAt > now).map((m) => m.visibleAt));
    if (!Number.isFinite(next)) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.wake(), Math.max(1, next - now));
    this.timer.unref();
  }
}

function receiptInvalid(receipt: string): Error {
  return Object.assign(new Error(`The receipt handle ${receipt.slice(0, 12)}… is not the message's latest`), { type: 'com.amazonaws.sqs#ReceiptHandleIsInvalid', status: 400 });
}

/** A batch entry by entry: the ones that throw are reported as Failed, as SQS does. */
function perEntry(entries: Json[], act: (entry: Json) => void): Json {
  const Successful: Json[] = [];
  const Failed: Json[] = [];
  for (const entry of entries) {
    try {
      act(entry);
      Successful.push({ Id: entry.Id });
    } catch (error) {
      const e = error as Error & { type?: string };
      Failed.push({ Id: entry.Id, Code: (e.type ?? 'InternalError').split('#').pop(), Message: e.message, SenderFault: true });
    }
  }
  return { Successful, Failed };
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface FastSqs {
  endpoint: string;
  /** Per queue: milliseconds each message waited between its send and its first receive. */
  dwell(): Record<string, number[]>;
  queueUrl(name: string): string;
  /** Hold a queue's messages back from every receive, or release them to the waiting long polls. */
  hold(name: string, held: boolean): void;
  close(): Promise<void>;
}

export async function startFastSqs(queueNames: string[], options: { port?: number; visibilityTimeoutSeconds?: number; retentionSeconds?: number } = {}): Promise<FastSqs> {
  const queues = new Map<string, FastQueue>();
  for (const name of queueNames) queues.set(name, new FastQueue(name, (options.visibilityTimeoutSeconds ?? 30) * 1000));
  const queueOf = (url: unknown): FastQueue => {
    const name = String(url ?? '').split('/').pop() ?? '';
    const queue = queues.get(name);
    if (!queue) throw Object.assign(new Error(`no queue ${name}`), { type: 'com.amazonaws.sqs#QueueDoesNotExist', status: 400 });
    return queue;
  };
  const wire = (m: StoredMessage, systemNames: unknown) => {
    const messageAttributes = m.attributes;
    const attributes: Record<string, string> = {
      ApproximateReceiveCount: String(m.receiveCount),
      SentTimestamp: String(m.sentAt),
      ...(m.groupId ? { MessageGroupId: m.groupId } : {}),
    };
    return {
      MessageId: m.id,
      ReceiptHandle: m.receipt,
      MD5OfBody: m.md5,
      Body: m.body,
      ...(systemNames ? { Attributes: attributes } : {}),
      ...(Object.keys(messageAttributes).length > 0 ? { MessageAttributes: messageAttributes } : {}),
    };
  };

  const handlers: Record<string, (input: Json) => Json | Promise<Json>> = {
    SendMessage: (input) => {
      const m = queueOf(input.QueueUrl).send(input.MessageBody, input.MessageAttributes ?? {}, input.MessageGroupId, input.MessageDeduplicationId);
      return { MessageId: m.id, MD5OfMessageBody: m.md5 };
    },
    SendMessageBatch: (input) => {
      const queue = queueOf(input.QueueUrl);
      return {
        Successful: (input.Entries as Json[]).map((e) => {
          const m = queue.send(e.MessageBody, e.MessageAttributes ?? {}, e.MessageGroupId, e.MessageDeduplicationId);
          return { Id: e.Id, MessageId: m.id, MD5OfMessageBody: m.md5 };
        }),
        Failed: [],
      };
    },
    ReceiveMessage: (input) => {
      const queue = queueOf(input.QueueUrl);
      const max = Number(input.MaxNumberOfMessages ?? 1);
      const visibilityMs = input.VisibilityTimeout !== undefined ? Number(input.VisibilityTimeout) * 1000 : queue.defaultVisibilityMs;
      const systemNames = input.MessageSystemAttributeNames ?? input.AttributeNames;
      const now = queue.take(max, visibilityMs);
      const waitMs = Number(input.WaitTimeSeconds ?? 0) * 1000;
      if (now.length > 0 || waitMs === 0) return { Messages: now.map((m) => wire(m, systemNames)) };
      return new Promise<Json>((resolve) => {
        const waiter: Waiter = {
          max,
          visibilityMs,
          done: (messages) => {
            clearTimeout(timer);
            resolve({ Messages: messages.map((m) => wire(m, systemNames)) });
          },
        };
        const timer = setTimeout(() => {
          const index = queue.waiters.indexOf(waiter);
          if (index >= 0) queue.waiters.splice(index, 1);
          resolve({ Messages: [] });
        }, waitMs);
        queue.waiters.push(waiter);
      });
    },
    DeleteMessage: (input) => {
      queueOf(input.QueueUrl).delete(input.ReceiptHandle);
      return {};
    },
    DeleteMessageBatch: (input) => {
      const queue = queueOf(input.QueueUrl);
      return perEntry(input.Entries as Json[], (e) => queue.delete(e.ReceiptHandle));
    },
    ChangeMessageVisibility: (input) => {
      queueOf(input.QueueUrl).changeVisibility(input.ReceiptHandle, Number(input.VisibilityTimeout));
      return {};
    },
    ChangeMessageVisibilityBatch: (input) => {
      const queue = queueOf(input.QueueUrl);
      return perEntry(input.Entries as Json[], (e) => queue.changeVisibility(e.ReceiptHandle, Number(e.VisibilityTimeout)));
    },
    GetQueueAttributes: (input) => {
      const queue = queueOf(input.QueueUrl);
      const now = Date.now();
      return {
        Attributes: {
          QueueArn: `arn:aws:sqs:us-east-1:000000000000:${queue.name}`,
          ApproximateNumberOfMessages: String(queue.messages.filter((m) => m.visibleAt <= now).length),
          ApproximateNumberOfMessagesNotVisible: String(queue.messages.filter((m) => m.visibleAt > now).length),
          // Reported, not applied: nothing expires here.
          MessageRetentionPeriod: String(options.retentionSeconds ?? 345_600),
        },
      };
    },
    PurgeQueue: (input) => {
      queueOf(input.QueueUrl).messages.length = 0;
      return {};
    },
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const action = String(req.headers['x-amz-target'] ?? '').replace('AmazonSQS.', '');
      res.setHeader('content-type', 'application/x-amz-json-1.0');
      const handler = handlers[action];
      const fail = (status: number, type: string, message: string) => {
        res.statusCode = status;
        res.end(JSON.stringify({ __type: type, message }));
      };
      if (!handler) return fail(400, 'com.amazonaws.sqs#InvalidAction', `${action} is not supported by the bench SQS`);
      Promise.resolve()
        .then(() => handler(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Json))
        .then(
          (out) => res.end(JSON.stringify(out)),
          (error: Error & { type?: string; status?: number }) => fail(error.status ?? 500, error.type ?? 'com.amazonaws.sqs#InternalError', error.message),
        );
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    endpoint,
    queueUrl: (name) => `${endpoint}/000000000000/${name}`,
    dwell: () => Object.fromEntries([...queues].map(([name, q]) => [name, q.dwellMs.splice(0)])),
    hold: (name, held) => {
      const queue = queueOf(name);
      queue.held = held;
      if (!held) queue.wake();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
