import { join, resolve } from 'node:path';
import type { Config } from '../config/config';
import type { LineInput } from '../lines/line';
import type { Logger } from '../observability/logger';
import { startAwsStandIns, type AwsStandInOptions, type AwsStandIns } from './aws-standins';
import { BIRD_STANDIN_FLOW_SECRET, BIRD_STANDIN_FLOW_SIGNING_SECRET, startBirdStandIn, type BirdStandIn } from './bird-standin';
import { embeddedAwsSettingsFor, localSecrets, writeEmbeddedState, type LocalSecrets } from '../config/embedded-state';
import { startGraphStandIn, type GraphStandIn } from './graph-standin';

export interface EmbeddedDefault {
  /** The configuration with the stand-ins' URLs, credentials and local secrets filled in. */
  config: Config;
  secrets: LocalSecrets;
  standIns: AwsStandIns;
  bird: BirdStandIn;
  graph: GraphStandIn;
  /** Lines registered when no LINES_FILE is given: they match the phone_number_ids most fixtures use. */
  demoLines: LineInput[];
  publish(gatewayUrl: string): void;
  /** What `npm start` prints for a newcomer: see embeddedBanner. */
  banner(webhookUrl: string, consoleUrl?: string): string;
  stop(): Promise<void>;
}

const LOCAL_GRAPH_TOKEN = 'local-graph-token';

/**
 * The embedded default's banner. It shows only values this process generated (kept in
 * DATA_DIR/local-secrets.json) so a newcomer can wire Meta or the simulator; a verify token or app
 * secret the operator set is theirs, and is never printed.
 */
export function embeddedBanner(input: {
  webhookUrl: string;
  operator: Config['whatsapp'];
  local: LocalSecrets;
  dataDir: string;
  queueUrl: string;
  dlqUrl: string;
  /** The console's URL when it runs, and whether CONSOLE_TOKEN was the operator's (then not shown). */
  console?: { url: string; operatorToken: boolean };
}): string {
  const { webhookUrl, operator, local, dataDir } = input;
  const localNote = `(local only, from ${join(dataDir, 'local-secrets.json')})`;
  const verifyToken = operator.verifyToken !== undefined ? '(from WHATSAPP_VERIFY_TOKEN, not shown)' : `${local.verifyToken} ${localNote}`;
  const appSecret = operator.appSecrets.length > 0 ? '(from WHATSAPP_APP_SECRETS, not shown)' : `${local.appSecret} ${localNote}`;
  return [
    '',
    'wa-ingress embedded default',
    `  webhook URL:   ${webhookUrl}`,
    `  verify token:  ${verifyToken}`,
    `  app secret:    ${appSecret}`,
    `  SQS queue:     ${input.queueUrl}`,
    `  DLQ:           ${input.dlqUrl}`,
    `  send API:      POST ${new URL(webhookUrl).origin}/v1/lines/demo/messages (Authorization: Bearer <outboundKey in ${join(dataDir, 'local-secrets.json')}>)`,
    `  outbox:        ${join(dataDir, 'whatsapp-outbox.jsonl')}`,
    ...(input.console
      ? [
          `  console:       ${input.console.url}`,
          `  console token: ${input.console.operatorToken ? '(from CONSOLE_TOKEN, not shown)' : `${local.consoleToken} ${localNote}`}`,
        ]
      : []),
    '',
    '',
  ].join('\n');
}

export function demoLines(birdFlowUrl: string, outboundKey?: string): LineInput[] {
  const line = (lineId: string, phoneNumberId: string, displayPhoneNumber: string): LineInput => ({
    lineId,
    phoneNumberId,
    wabaId: '102290129340398',
    displayPhoneNumber,
    bird: { transport: 'flow', flowUrl: birdFlowUrl, flowSecret: BIRD_STANDIN_FLOW_SECRET, flowSigningSecret: BIRD_STANDIN_FLOW_SIGNING_SECRET },
    ...(outboundKey ? { outboundKeys: [outboundKey] } : {}),
  });
  return [line('demo', '106540352242922', '15550783881'), line('demo-2', '1122334455667', '15551234567')];
}

/**
 * The embedded default's AWS stand-ins: FIFO main queue and DLQ (conversation order, src/queue/fifo.ts,
 * as infra/ deploys), queues on disk (fauxqs), tables and objects under dataDir. bench:worker starts
 * its durable section with these too.
 */
export function embeddedAwsStandInOptions(dataDir: string, visibilityTimeoutSeconds: number): AwsStandInOptions {
  return { dataDir, fifo: true, durableSqs: true, visibilityTimeoutSeconds };
}

/**
 * `npm start` with no SQS_QUEUE_URL: run SQS, DynamoDB and S3 stand-ins, everything on disk under
 * DATA_DIR (queues in SQLite, tables in LevelDB, objects as files), so a kill -9 or a reboot loses
 * nothing acknowledged; plus a Bird stand-in (inbox in DATA_DIR/bird-inbox.jsonl) and a Graph
 * stand-in that serves media for the simulator.
 * Variables the operator set (GRAPH_API_BASE_URL, MEDIA_ALLOWED_HOSTS, BIRD_API_BASE_URL,
 * WHATSAPP_ACCESS_TOKEN) win over the stand-ins.
 */
export async function startEmbeddedDefault(config: Config, logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<EmbeddedDefault> {
  const dataDir = resolve(config.dataDir);
  const standIns = await startAwsStandIns(embeddedAwsStandInOptions(dataDir, config.worker.visibilityTimeoutSeconds));
  // The echo AI answers every message with a synchronous `replies`, so a local run shows the whole loop.
  const bird = await startBirdStandIn({ inboxFile: join(dataDir, 'bird-inbox.jsonl'), echo: true, logger: logger.child({ standIn: 'bird' }) });
  const secrets = localSecrets(dataDir);
  const graph = await startGraphStandIn({
    token: LOCAL_GRAPH_TOKEN,
    serveAnyMediaId: true,
    logger: logger.child({ standIn: 'graph' }),
    // Replies land in the outbox; statuses go back to the gateway once it listens (publish).
    messages: { outboxFile: join(dataDir, 'whatsapp-outbox.jsonl'), statusDelayMs: 200 },
  });
  const graphApiBaseUrl = env.GRAPH_API_BASE_URL ? config.worker.graphApiBaseUrl : graph.baseUrl;
  const embedded: Config = {
    ...config,
    console: { ...config.console, token: config.console.token ?? secrets.consoleToken },
    whatsapp: {
      verifyToken: config.whatsapp.verifyToken ?? secrets.verifyToken,
      appSecrets: config.whatsapp.appSecrets.length > 0 ? config.whatsapp.appSecrets : [secrets.appSecret],
      accessToken: config.whatsapp.accessToken ?? LOCAL_GRAPH_TOKEN,
    },
    sqs: { ...config.sqs, queueUrl: standIns.queueUrl, dlqUrl: standIns.dlqUrl, turnQueueUrl: standIns.turnQueueUrl },
    outbound: { ...config.outbound, queueUrl: standIns.outboundQueueUrl, dlqUrl: standIns.outboundDlqUrl },
    aws: { ...config.aws, ...embeddedAwsSettingsFor(standIns.endpoints) },
    worker: {
      ...config.worker,
      graphApiBaseUrl,
      mediaAllowedHosts: env.MEDIA_ALLOWED_HOSTS ? config.worker.mediaAllowedHosts : [...config.worker.mediaAllowedHosts, new URL(graphApiBaseUrl).hostname],
      birdApiBaseUrl: env.BIRD_API_BASE_URL ? config.worker.birdApiBaseUrl : bird.conversationsBaseUrl,
    },
  };
  logger.info(
    { dataDir, endpoints: standIns.endpoints, queueUrl: standIns.queueUrl, dlqUrl: standIns.dlqUrl, bird: bird.url, graph: graph.baseUrl },
    'embedded stand-ins started (queues, tables and objects on disk under DATA_DIR)',
  );
  return {
    config: embedded,
    secrets,
    standIns,
    bird,
    graph,
    demoLines: demoLines(bird.flowUrl(), secrets.outboundKey),
    banner: (webhookUrl, consoleUrl) =>
      embeddedBanner({
        webhookUrl,
        operator: config.whatsapp,
        local: secrets,
        dataDir: config.dataDir,
        queueUrl: standIns.queueUrl,
        dlqUrl: standIns.dlqUrl,
        console: consoleUrl ? { url: consoleUrl, operatorToken: config.console.token !== undefined } : undefined,
      }),
    publish(gatewayUrl) {
      graph.messages.setWebhookTarget(gatewayUrl, embedded.whatsapp.appSecrets[0]);
      // The app's callback, as the Meta watcher reads it (webhook_configuration.application).
      graph.watch.setDrift({ appCallbackUrl: gatewayUrl });
      writeEmbeddedState(dataDir, {
        pid: process.pid,
        endpoints: standIns.endpoints,
        queueUrl: standIns.queueUrl,
        dlqUrl: standIns.dlqUrl,
        outboundQueueUrl: standIns.outboundQueueUrl,
        outboundDlqUrl: standIns.outboundDlqUrl,
        gatewayUrl,
        birdUrl: bird.url,
        graphUrl: graph.baseUrl,
      });
    },
    async stop() {
      await Promise.allSettled([bird.stop(), graph.stop()]);
      await standIns.stop();
    },
  };
}
