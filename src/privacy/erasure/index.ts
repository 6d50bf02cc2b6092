import type { AwsClients } from '../../aws/clients';
import type { Config } from '../../config/config';
import type { Logger } from '../../observability/logger';
import type { Registry } from '../../observability/metrics';
import { DynamoErasureStore } from './dynamo-erasure-store';
import { ErasureRunner } from './erasure-runner';
import { ErasureService } from './erasure-service';
import { ErasedContactRedriveGuard } from './redrive-guard';
import type { ErasureStep } from './steps/erasure-step';
import { JournalErasureStep } from './steps/journal-erasure';
import { MediaErasureStep } from './steps/media-erasure';
import { OutboundErasureStep } from './steps/outbound-erasure';
import { TurnBufferErasureStep } from './steps/turn-erasure';
import { ArchiveErasureStep } from './steps/archive-erasure';
import { ContactStateErasureStep } from './steps/contact-state-erasure';
import { ArchiveObjects } from '../../archive/archive-objects';

export { createErasureRouter } from './erasure-api';
export { ErasureService } from './erasure-service';
export { ErasureRunner } from './erasure-runner';
export { DynamoErasureStore } from './dynamo-erasure-store';
export { ErasedContactRedriveGuard } from './redrive-guard';

/**
 * The stores an erasure reaches, in the order it empties them.
 */
export function erasureSteps(config: Config, clients: AwsClients): ErasureStep[] {
  const documents = clients.documents;
  return [
    new MediaErasureStep({ s3: clients.s3, bucket: config.s3.bucket }),
    new JournalErasureStep({ documents, tableName: config.dynamodb.dedupeTable }),
    // Outbound records exist only where the outbound pipeline runs.
    ...(config.outbound.queueUrl ? [new OutboundErasureStep({ documents, tableName: config.dynamodb.outboundTable })] : []),
    new TurnBufferErasureStep({ documents, tableName: config.dynamodb.dedupeTable, contactsTableName: config.dynamodb.contactsTable }),
    new ContactStateErasureStep({ documents, tableName: config.dynamodb.contactsTable }),
    new ArchiveErasureStep(new ArchiveObjects({ s3: clients.s3, bucket: config.s3.bucket })),
  ];
}

/** The process's erasures: the service (API, console) and, in a worker, the runner it wakes. */
export function createErasures(deps: { config: Config; clients: AwsClients; logger: Logger; registry: Registry; runs: boolean }): {
  service: ErasureService;
  runner?: ErasureRunner;
  store: DynamoErasureStore;
} {
  const logger = deps.logger.child({ component: 'erasure' });
  const store = new DynamoErasureStore({ documents: deps.clients.documents, tableName: deps.config.dynamodb.erasuresTable });
  const steps = erasureSteps(deps.config, deps.clients);
  // Like the dedupe lease: half the visibility timeout, so a killed worker's erasure resumes as soon as its messages do.
  const leaseMs = Math.floor((deps.config.worker.visibilityTimeoutSeconds * 1000) / 2);
  const runner = deps.runs ? new ErasureRunner({ store, steps, logger, registry: deps.registry, leaseMs }) : undefined;
  const service = new ErasureService({ store, stepNames: steps.map((s) => s.name), logger, onAccepted: runner && (() => runner.kick()) });
  return { service, runner, store };
}

/** The inbound DLQ's redrive check, for the console and the DLQ CLI. */
export function erasedRedriveGuard(config: Config, clients: AwsClients): ErasedContactRedriveGuard {
  return new ErasedContactRedriveGuard(new DynamoErasureStore({ documents: clients.documents, tableName: config.dynamodb.erasuresTable }));
}
