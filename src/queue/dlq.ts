/**
 * The DLQ, by job: parking (dlq-parking.ts: the parker and the attributes it adds and the redrive
 * removes), reading (dlq-scanner.ts: the scan; dlq-entry.ts: what the operator sees) and the operator's commands
 * (dead-letter-queue.ts: list, show, redrive, purge). One import path for the callers.
 */
export { DlqParker, PARKING_ATTRIBUTES, REDRIVE_POLICY_REASON, parkingAttributes, unparkedAttributes, type DlqParkerOptions, type ParkInput } from './dlq-parking';
export { describeDlqMessage, type DlqEntry } from './dlq-entry';
export { DeadLetterQueue, type DeadLetterQueueOptions, type RedriveResult, type RedriveSelector } from './dead-letter-queue';
