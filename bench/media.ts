/**
 * Media fetcher benchmark: a 100 MiB document, generated and streamed by the Graph stand-in,
 * stored in s3rver through the real S3MediaStore, against a plain stream copy of the same bytes
 * (Graph lookup → fetch → lib-storage Upload, no checks) between the same stand-ins.
 *
 * The stand-ins run in a child process so the RSS measured here is the fetcher's alone, as in
 * the worker. Run: `npm run bench:media` (tsc -p tsconfig.bench.json && node dist-bench/bench/media.js).
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { startAwsStandIns } from '../src/local/aws-standins';
import { startGraphStandIn } from '../src/local/graph-standin';
import { S3MediaStore } from '../src/media';
import { createLogger } from '../src/observability/logger';
import { createRegistry } from '../src/observability/metrics';

const SIZE = 100 * 1024 * 1024; // Exactly the document cap: the largest file the fetcher accepts.
const WARMUP_SIZE = 8 * 1024 * 1024;
const ROUNDS = 5;
const TOKEN = 'bench-token';
const BUCKET = 'wa-ingress-bench';
const PART_SIZE = 5 * 1024 * 1024;
const QUEUE_SIZE = 2;
const MIB = 1024 * 1024;

interface StandInEndpoints {
  s3: string;
  graphBaseUrl: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

async function serveStandIns(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'wa-ingress-bench-media-'));
  const [aws, graph] = await Promise.all([startAwsStandIns({ dataDir }), startGraphStandIn({ token: TOKEN })]);
  graph.addMedia('bench-100m', { body: { size: SIZE, seed: 'bench' }, mimeType: 'application/pdf' });
  graph.addMedia('bench-warmup', { body: { size: WARMUP_SIZE, seed: 'warmup' }, mimeType: 'application/pdf' });
  // Hash the generated bodies now, not during the first timed lookup.
  for (const id of ['bench-100m', 'bench-warmup']) {
    await fetch(`${graph.baseUrl}/v25.0/${id}`, { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.json());
  }
  const endpoints: StandInEndpoints = { s3: aws.endpoints.s3, graphBaseUrl: graph.baseUrl, credentials: aws.credentials };
  process.send?.(endpoints);
  process.on('disconnect', () => {
    void Promise.all([aws.stop(), graph.stop()]).finally(() => {
      rmSync(dataDir, { recursive: true, force: true });
      process.exit(0);
    });
  });
}

const collectGarbage: () => void = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

interface Run {
  name: string;
  seconds: number;
  baselineRss: number;
  peakRss: number;
}

async function measure(name: string, work: () => Promise<void>): Promise<Run> {
  collectGarbage();
  await new Promise((resolve) => setTimeout(resolve, 100));
  const baselineRss = process.memoryUsage().rss;
  let peakRss = baselineRss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 20);
  const started = process.hrtime.bigint();
  try {
    await work();
  } finally {
    clearInterval(sampler);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  return { name, seconds, baselineRss, peakRss };
}

async function main(): Promise<void> {
  const child = fork(__filename, ['--serve-standins'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const endpoints = await new Promise<StandInEndpoints>((resolve, reject) => {
    child.once('message', (m) => resolve(m as StandInEndpoints));
    child.once('exit', (code) => reject(new Error(`stand-ins exited with ${code}`)));
  });
  const s3 = new S3Client({ region: 'us-east-1', endpoint: endpoints.s3, forcePathStyle: true, credentials: endpoints.credentials });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const store = new S3MediaStore({
    s3,
    bucket: BUCKET,
    graphApiBaseUrl: endpoints.graphBaseUrl,
    graphApiVersion: 'v25.0',
    allowedHosts: ['127.0.0.1'],
    urlTtlSeconds: 300,
    logger: createLogger({ level: 'warn' }),
    registry: createRegistry({ defaultMetrics: false }),
    partSizeBytes: PART_SIZE,
    queueSize: QUEUE_SIZE,
  });

  let seq = 0;
  const viaMediaStore = async (mediaId: string) => {
    seq += 1;
    const stored = await store.store({
      lineId: 'bench',
      accessToken: TOKEN,
      wamid: `wamid.bench${seq}`,
      contact: '16505550000',
      media: { kind: 'document', id: mediaId, mimeType: 'application/pdf' },
      receivedAt: new Date(),
    });
    if (stored.size !== (mediaId === 'bench-100m' ? SIZE : WARMUP_SIZE)) throw new Error(`stored ${stored.size} bytes`);
  };
  const plainCopy = async (mediaId: string) => {
    seq += 1;
    const headers = { authorization: `Bearer ${TOKEN}` };
    const info = (await (await fetch(`${endpoints.graphBaseUrl}/v25.0/${mediaId}`, { headers })).json()) as { url: string };
    const response = await fetch(info.url, { headers });
    if (response.status !== 200 || !response.body) throw new Error(`download answered ${response.status}`);
    await new Upload({
      client: s3,
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
      params: { Bucket: BUCKET, Key: `plain/${seq}/${mediaId}.pdf`, Body: Readable.fromWeb(response.body as never), ContentType: 'application/pdf' },
    }).done();
  };

  await plainCopy('bench-warmup');
  await viaMediaStore('bench-warmup');
  const runs: Run[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate the order so neither path always runs on a warmer process; media goes first, so
    // its worst RSS growth includes the process's first 100 MiB run.
    const order = round % 2 === 0 ? (['media', 'plain'] as const) : (['plain', 'media'] as const);
    for (const which of order) {
      runs.push(await measure(which, () => (which === 'plain' ? plainCopy('bench-100m') : viaMediaStore('bench-100m'))));
    }
  }
  s3.destroy();
  child.disconnect();

  const mib = (bytes: number) => (bytes / MIB).toFixed(1);
  console.log(`media bench: ${mib(SIZE)} MiB document, partSize ${mib(PART_SIZE)} MiB, queueSize ${QUEUE_SIZE}, ${ROUNDS} rounds`);
  console.log('run     seconds  MiB/s   baseline RSS  peak RSS  growth (MiB)');
  for (const run of runs) {
    console.log(
      `${run.name.padEnd(7)} ${run.seconds.toFixed(2).padStart(7)}  ${(SIZE / MIB / run.seconds).toFixed(0).padStart(5)}  ${mib(run.baselineRss).padStart(12)}  ${mib(run.peakRss).padStart(8)}  ${mib(run.peakRss - run.baselineRss).padStart(12)}`,
    );
  }
  const median = (name: string) => {
    const times = runs.filter((r) => r.name === name).map((r) => r.seconds).sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)] ?? NaN;
  };
  const worstGrowth = (name: string) => Math.max(...runs.filter((r) => r.name === name).map((r) => r.peakRss - r.baselineRss));
  const ratio = median('media') / median('plain');
  console.log(
    `median time: media ${median('media').toFixed(2)} s, plain ${median('plain').toFixed(2)} s, ratio media/plain ${ratio.toFixed(2)} (target ≤ 1.5): ${ratio <= 1.5 ? 'OK' : 'MISSED'}`,
  );
  const growth = worstGrowth('media') / MIB;
  console.log(`worst RSS growth: media ${growth.toFixed(1)} MiB (target ≤ 64): ${growth <= 64 ? 'OK' : 'MISSED'}, plain ${(worstGrowth('plain') / MIB).toFixed(1)} MiB`);
}

if (process.argv.includes('--serve-standins')) {
  serveStandIns().catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else {
  main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
}
