/**
 * Archive benchmark: N signed text webhooks (the shape Meta sends, ~1 KB each) archived by the
 * real S3PayloadArchive into the S3 stand-in at a steady rate, then replayed by the real
 * ArchiveReplay (signatures verified again, SqsBatchProducer onto the FIFO inbound queue).
 * Figures: S3 PUTs per payload and stored (gzip'd) bytes per payload while archiving; replay rate
 * (payloads/s from the first archive read to the last SQS acknowledgement).
 * Run: `npm run bench:archive`. Env: BENCH_PAYLOADS (5000), BENCH_RATE (payloads/s, 1000), ARCHIVE_FLUSH_MS (1000).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ArchiveObjects } from '../src/archive/archive-objects';
import { contactsOf } from '../src/archive/archive-record';
import { S3PayloadArchive } from '../src/archive/archive-writer';
import { ArchiveReplay } from '../src/archive/replay';
import { createAwsClients } from '../src/aws/clients';
import { ensureResources } from '../src/aws/resources';
import { SqsBatchProducer } from '../src/ingress/producer';
import { sign } from '../src/ingress/signature';
import { CachedLineRegistry } from '../src/lines/registry';
import { ReferenceSecretResolver } from '../src/lines/secrets';
import { DynamoLineStore } from '../src/lines/store';
import { startAwsStandIns } from '../src/local/aws-standins';
import { envelopeToEvents } from '../src/meta/envelope';
import { createLogger } from '../src/observability/logger';
import { createRegistry } from '../src/observability/metrics';
import { S3ClaimCheckWriter } from '../src/queue/claim-check-writer';
import { messagesWebhook } from './worker-payloads';

const PAYLOADS = Number(process.env.BENCH_PAYLOADS ?? 5000);
const RATE = Number(process.env.BENCH_RATE ?? 1000);
const FLUSH_MS = Number(process.env.ARCHIVE_FLUSH_MS ?? 1000);
const SECRET = 'bench-app-secret';

const LINE = { wabaId: '102290129340398', displayPhoneNumber: '15550783881', phoneNumberId: '106540352242922' };

function payload(i: number): string {
  const from = `1650555${String(i % 500).padStart(4, '0')}`;
  return messagesWebhook(LINE, from, `Customer ${i % 500}`, [
    { from, id: `wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQz${String(i).padStart(12, '0')}AA==`, timestamp: String(1749416383 + i), type: 'text', text: { body: `Hello, this is message ${i}: can you tell me when my order ships?` } },
  ]);
}

async function main(): Promise<void> {
  const standIns = await startAwsStandIns({ fifo: true });
  const clients = createAwsClients({ region: 'us-east-1', endpoints: standIns.endpoints, forcePathStyle: true, credentials: standIns.credentials });
  const names = { linesTable: 'lines', dedupeTable: 'dedupe', bucket: 'wa-bench' };
  await ensureResources(clients, names);
  const logger = createLogger({ level: 'warn' });
  const registry = createRegistry({ defaultMetrics: false });
  const objects = new ArchiveObjects({ s3: clients.s3, bucket: names.bucket });
  const archive = new S3PayloadArchive({ objects, flushMs: FLUSH_MS, maxBufferBytes: 64 * 1024 * 1024, logger, registry });

  const from = new Date(Date.now() - 1000);
  let rawBytes = 0;
  const started = Date.now();
  for (let i = 0; i < PAYLOADS; i++) {
    const body = Buffer.from(payload(i));
    rawBytes += body.length;
    archive.add({
      receivedAt: new Date().toISOString(),
      requestId: randomUUID(),
      path: '/webhooks/whatsapp',
      signature: sign(SECRET, body),
      body,
      contacts: contactsOf(envelopeToEvents(JSON.parse(body.toString()))),
    });
    const due = started + ((i + 1) * 1000) / RATE;
    if (due > Date.now()) await sleep(due - Date.now());
  }
  await archive.flush(30_000);
  const metric = async (name: string, labels: Record<string, string> = {}) =>
    ((await registry.getSingleMetric(name)?.get())?.values ?? []).filter((v) => Object.entries(labels).every(([k, w]) => v.labels[k] === w)).reduce((n, v) => n + v.value, 0);
  const puts = await metric('wa_ingress_archive_puts_total', { outcome: 'ok' });
  const stored = await metric('wa_ingress_archive_bytes_total');
  const archived = await metric('wa_ingress_archive_records_total', { outcome: 'archived' });

  const queue = new SqsBatchProducer({
    sqs: clients.sqs,
    queueUrl: standIns.queueUrl,
    claimCheck: new S3ClaimCheckWriter({ s3: clients.s3, bucket: names.bucket }),
    batchWindowMs: 5,
    timeoutMs: 30_000,
    claimCheckThresholdBytes: 900 * 1024,
    logger,
  });
  const replay = new ArchiveReplay({
    objects,
    queue,
    lines: new CachedLineRegistry({ store: new DynamoLineStore({ documents: clients.documents, tableName: names.linesTable }), ttlMs: 60_000, registry }),
    secrets: new ReferenceSecretResolver({ production: false, cacheTtlMs: 60_000, env: {} }),
    appSecrets: [SECRET],
  });
  const replayStarted = Date.now();
  const counts = await replay.run({ from, to: new Date() });
  const replaySeconds = (Date.now() - replayStarted) / 1000;

  const lines = [
    `archive: ${archived} of ${PAYLOADS} payloads at ${RATE}/s, ARCHIVE_FLUSH_MS=${FLUSH_MS}`,
    `  S3 PUTs: ${puts} → ${(puts / archived).toFixed(4)} PUTs/payload (bound: ≤ 0.1 under load)`,
    `  stored:  ${(stored / archived).toFixed(0)} bytes/payload gzip'd (bodies ${(rawBytes / PAYLOADS).toFixed(0)} bytes raw)`,
    `replay: read ${counts.read}, verified ${counts.verified}, enqueued ${counts.enqueued} in ${replaySeconds.toFixed(2)} s → ${(counts.enqueued / replaySeconds).toFixed(0)} payloads/s`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  clients.destroy();
  await standIns.stop();
}

main().catch((error) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
