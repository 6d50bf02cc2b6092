import { assertServable, loadConfig } from '../../src/config/config';

describe('configuration', () => {
  it('is the embedded default with no SQS_QUEUE_URL, with documented defaults', () => {
    const config = loadConfig({});
    expect(config.embedded).toBe(true);
    expect(config.port).toBe(8080);
    expect(config.createMissingResources).toBe(true);
    expect(config.worker).toMatchObject({ concurrency: 32, waitTimeSeconds: 1, dedupeTtlDays: 15, graphApiVersion: 'v25.0' });
    expect(loadConfig({ SQS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/q' }).worker.waitTimeSeconds).toBe(20);
    expect(config.ingress).toMatchObject({ maxBodyBytes: 3 * 1024 * 1024, shutdownTimeoutMs: 25_000 });
    expect(config.worker.visibilityTimeoutSeconds).toBe(30);
  });

  it('the gather windows: a 10 ms receive linger and a 2 ms send window unless told, each bounded', () => {
    expect(loadConfig({}).worker.receiveLingerMs).toBe(10);
    expect(loadConfig({}).sqs.batchWindowMs).toBe(2);
    expect(loadConfig({ SQS_RECEIVE_LINGER_MS: '0' }).worker.receiveLingerMs).toBe(0);
    expect(() => loadConfig({ SQS_RECEIVE_LINGER_MS: '1001' })).toThrow(/SQS_RECEIVE_LINGER_MS/);
    expect(() => loadConfig({ BATCH_WINDOW_MS: '101' })).toThrow(/BATCH_WINDOW_MS/);
  });

  it('Bird webhooks: PUBLIC_BASE_URL without its trailing slash, an http(s) URL only; the timestamp window 5 minutes unless told', () => {
    expect(loadConfig({ PUBLIC_BASE_URL: 'https://wa.example.com/' }).ingress).toMatchObject({ publicBaseUrl: 'https://wa.example.com', birdWebhookMaxSkewMs: 300_000 });
    expect(loadConfig({}).ingress.publicBaseUrl).toBeUndefined();
    expect(loadConfig({ BIRD_WEBHOOK_MAX_SKEW_SECONDS: '3600' }).ingress.birdWebhookMaxSkewMs).toBe(3_600_000);
    expect(() => loadConfig({ PUBLIC_BASE_URL: 'ftp://wa.example.com' })).toThrow(/PUBLIC_BASE_URL/);
    expect(() => loadConfig({ BIRD_WEBHOOK_MAX_SKEW_SECONDS: '5' })).toThrow(/BIRD_WEBHOOK_MAX_SKEW_SECONDS/);
  });

  it('the archive: flushed within 1 s, kept 30 days, 64 MiB of buffer while S3 fails, unless told', () => {
    expect(loadConfig({}).archive).toEqual({ flushMs: 1000, retentionDays: 30, bufferBytes: 64 * 1024 * 1024 });
    expect(loadConfig({ ARCHIVE_FLUSH_MS: '250', ARCHIVE_RETENTION_DAYS: '7', ARCHIVE_BUFFER_BYTES: '1048576' }).archive).toEqual({ flushMs: 250, retentionDays: 7, bufferBytes: 1048576 });
    expect(() => loadConfig({ ARCHIVE_FLUSH_MS: '0' })).toThrow(/ARCHIVE_FLUSH_MS/);
    expect(() => loadConfig({ ARCHIVE_RETENTION_DAYS: '0' })).toThrow(/ARCHIVE_RETENTION_DAYS/);
  });

  it('the Meta watcher: a round every 600 s and a 60 s lease unless told, 0 turns it off; the app id is numeric', () => {
    expect(loadConfig({}).watch).toEqual({ intervalMs: 600_000, leaseMs: 60_000, appId: undefined });
    expect(loadConfig({ META_WATCH_INTERVAL_SECONDS: '0', META_WATCH_LEASE_SECONDS: '3', WHATSAPP_APP_ID: '100000000000001' }).watch).toEqual({ intervalMs: 0, leaseMs: 3000, appId: '100000000000001' });
    expect(() => loadConfig({ WHATSAPP_APP_ID: 'my-app' })).toThrow(/WHATSAPP_APP_ID/);
    expect(() => loadConfig({ META_WATCH_LEASE_SECONDS: '1' })).toThrow(/META_WATCH_LEASE_SECONDS/);
  });

  it('names the variable that is wrong', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => loadConfig({ DEDUPE_TTL_DAYS: '14' })).toThrow(/DEDUPE_TTL_DAYS/);
    // Outbound records (and their journey) must outlive the DLQ's 14 days.
    expect(() => loadConfig({ OUTBOUND_RETENTION_DAYS: '13' })).toThrow(/OUTBOUND_RETENTION_DAYS/);
    expect(loadConfig({ OUTBOUND_RETENTION_DAYS: '14' }).env.OUTBOUND_RETENTION_DAYS).toBe(14);
    expect(() => loadConfig({ MEDIA_RETENTION_DAYS: '0' })).toThrow(/MEDIA_RETENTION_DAYS/);
    expect(loadConfig({}).s3.mediaRetentionDays).toBe(30);
    expect(loadConfig({ MEDIA_RETENTION_DAYS: '7', DYNAMODB_ERASURES_TABLE: 'my-erasures' })).toMatchObject({ s3: { mediaRetentionDays: 7 }, dynamodb: { erasuresTable: 'my-erasures' } });
    expect(() => loadConfig({ SQS_QUEUE_URL: 'not a url' })).toThrow(/SQS_QUEUE_URL/);
    // The outbox sweeper: 30 s pending, a sweep every 10 s, unless told.
    expect(loadConfig({}).outbound.outbox).toEqual({ ageMs: 30_000, sweepMs: 10_000 });
    expect(loadConfig({ OUTBOUND_OUTBOX_AGE_MS: '1000', OUTBOUND_OUTBOX_SWEEP_MS: '250' }).outbound.outbox).toEqual({ ageMs: 1000, sweepMs: 250 });
    expect(() => loadConfig({ OUTBOUND_OUTBOX_AGE_MS: '0' })).toThrow(/OUTBOUND_OUTBOX_AGE_MS/);
    expect(() => loadConfig({ OUTBOUND_OUTBOX_SWEEP_MS: 'often' })).toThrow(/OUTBOUND_OUTBOX_SWEEP_MS/);
    expect(() => loadConfig({ SHUTDOWN_TIMEOUT_MS: '500' })).toThrow(/SHUTDOWN_TIMEOUT_MS/);
  });

  it('refuses the embedded default and plain-http Graph in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/SQS_QUEUE_URL/);
    expect(() => loadConfig({ NODE_ENV: 'production', SQS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/q', GRAPH_API_BASE_URL: 'http://graph.example' })).toThrow(
      /GRAPH_API_BASE_URL: must be https/,
    );
  });

  it('refuses plain-http Bird API in production (the access keys travel with every call)', () => {
    const queue = { SQS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/q' };
    expect(() => loadConfig({ NODE_ENV: 'production', ...queue, BIRD_API_BASE_URL: 'http://bird.example' })).toThrow(/BIRD_API_BASE_URL: must be https/);
    expect(() => loadConfig({ NODE_ENV: 'production', ...queue, BIRD_API_BASE_URL: 'https://bird.example' })).not.toThrow();
    expect(() => loadConfig({ NODE_ENV: 'development', ...queue, BIRD_API_BASE_URL: 'http://127.0.0.1:9' })).not.toThrow();
  });

  it('a worker drain outlasts one long poll: SHUTDOWN_TIMEOUT_MS below the receive wait + 3 s is refused for worker roles', () => {
    const deployed = { SQS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/q', SQS_DLQ_URL: 'https://sqs.eu-west-1.amazonaws.com/1/d', S3_BUCKET: 'bucket', WHATSAPP_VERIFY_TOKEN: 'v', WHATSAPP_APP_SECRETS: 's' };
    const short = loadConfig({ ...deployed, SHUTDOWN_TIMEOUT_MS: '10000' });
    expect(() => assertServable(short, 'worker')).toThrow(/SHUTDOWN_TIMEOUT_MS: must be at least SQS_WAIT_TIME_SECONDS × 1000 \+ 3000 \(23000\)/);
    expect(() => assertServable(short, 'all')).toThrow(/SHUTDOWN_TIMEOUT_MS/);
    expect(() => assertServable(short, 'ingress')).not.toThrow();
    expect(() => assertServable(loadConfig({ ...deployed, SHUTDOWN_TIMEOUT_MS: '10000', SQS_WAIT_TIME_SECONDS: '5' }), 'worker')).not.toThrow();
    expect(() => assertServable(loadConfig(deployed), 'worker')).not.toThrow();
  });

  it('asks each role only for what it uses', () => {
    const deployed = loadConfig({ SQS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/q', S3_BUCKET: 'bucket' });
    expect(() => assertServable(deployed, 'ingress')).toThrow(/WHATSAPP_VERIFY_TOKEN[\s\S]*WHATSAPP_APP_SECRETS/);
    expect(() => assertServable(deployed, 'worker')).toThrow(/SQS_DLQ_URL/);
    const worker = loadConfig({ SQS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/q', SQS_DLQ_URL: 'https://sqs.eu-west-1.amazonaws.com/1/d', S3_BUCKET: 'bucket' });
    expect(() => assertServable(worker, 'worker')).not.toThrow();
    expect(worker.whatsapp.appSecrets).toEqual([]);
    expect(loadConfig({ WHATSAPP_APP_SECRETS: ' a, b ,,c ' }).whatsapp.appSecrets).toEqual(['a', 'b', 'c']);
  });
});
