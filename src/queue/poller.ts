import { setMaxListeners } from 'node:events';
import { ReceiveMessageCommand, type Message } from '@aws-sdk/client-sqs';
import { PermanentError, RetryableError, reasonOf } from '../errors';
import type { Logger } from '../observability/logger';
import { within } from '../resilience/deadline';
import { INGRESS_ATTRIBUTES, parseIngressAttributes, type ReceivedMessage } from './message';
import { PollerMetrics, type HandlerOutcomeLabel, type RetryCause } from './poller-metrics';
import { pollerSettings, type HandlerOutcome, type PollerSettings, type SqsPollerOptions } from './poller-options';
import { ReceiveScheduler } from './receive-scheduler';
import { retryDelaySeconds } from './retry-schedule';
import { VisibilityKeeper, type HeldMessage } from './visibility-keeper';

export type { HandlerContext, HandlerOutcome, MessageHandler, SqsPollerOptions } from './poller-options';
export { DEFAULT_RETRY_POLICY, MAX_VISIBILITY_SECONDS, retryDelaySeconds } from './retry-schedule';

/**
 * Long-polling SQS consumer with bounded concurrency: each message handled on its own as soon as it
 * arrives, visibility renewed while its handler runs, settled by delete or a growing retry delay.
 * Three parts: the ReceiveScheduler (when and how many to receive), the VisibilityKeeper
 * (heartbeat, delete, retry, hand back) and PollerMetrics; this class handles one message.
 * Not sqs-consumer: one instance awaits a whole receive batch before receiving again, so one slow message holds up the rest.
 */
export class SqsPoller {
  private readonly settings: PollerSettings;
  private readonly logger: Logger;
  private readonly metrics: PollerMetrics;
  private readonly scheduler: ReceiveScheduler;
  private readonly keeper: VisibilityKeeper;
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  /** Aborted at the shutdown bound: handlers still running release their claims and their messages are handed back. */
  private readonly handlers = new AbortController();
  private readonly tasks = new Set<Promise<void>>();
  private stopping: Promise<void> | undefined;

  constructor(options: SqsPollerOptions) {
    this.settings = pollerSettings(options);
    const s = this.settings;
    // One signal for every handler in flight: each may listen a few times at once (its Bird or Graph
    // call, its waits), and a group hold once in all. Node's leak warning at 10 would fire on design.
    setMaxListeners(s.concurrency * 4 + 10, this.handlers.signal);
    this.logger = s.logger.child({ component: 'sqs-poller' });
    this.metrics = new PollerMetrics(s.registry, s.metricsPrefix);
    this.keeper = new VisibilityKeeper({
      sqs: s.sqs,
      queueUrl: s.queueUrl,
      visibilityTimeoutSeconds: s.visibilityTimeoutSeconds,
      heartbeatIntervalMs: s.heartbeatIntervalMs,
      deleteLingerMs: s.deleteLingerMs,
      metrics: this.metrics,
      logger: this.logger,
    });
    this.scheduler = new ReceiveScheduler({
      receive: (max, signal) => this.receive(max, signal),
      dispatch: (message) => this.begin(message),
      handBack: (messages) => this.handBackReceived(messages),
      concurrency: s.concurrency,
      receiveLoops: s.receiveLoops,
      receiveGatherMs: s.receiveGatherMs,
      receiveLingerMs: s.receiveLingerMs,
      pauseCheckMs: s.pauseCheckMs,
      shouldPause: s.shouldPause,
      metrics: this.metrics,
      logger: this.logger,
    });
  }

  get inFlightCount(): number {
    return this.keeper.size;
  }

  start(): void {
    if (this.state !== 'new') throw new Error(`SqsPoller cannot start: it is ${this.state}`);
    this.state = 'running';
    this.keeper.start();
    this.scheduler.start();
    const { queueUrl, concurrency, receiveLoops, visibilityTimeoutSeconds } = this.settings;
    this.logger.info({ queueUrl, concurrency, receiveLoops, visibilityTimeoutSeconds }, 'SQS poller started');
  }

  /**
   * Stop within shutdownTimeoutMs and leave nothing hidden: no new receives; receives already out
   * return and what they bring is handed back (visibility 0); in-flight handlers may finish until
   * the bound, then their signal aborts (they release their claims) and their messages are handed
   * back too. The tail of the budget flushes deletes and visibility changes.
   */
  stop(): Promise<void> {
    this.stopping ??= this.drain();
    return this.stopping;
  }

  private async drain(): Promise<void> {
    const { shutdownTimeoutMs } = this.settings;
    const deadline = Date.now() + shutdownTimeoutMs;
    this.state = 'stopping';
    // Kept for the hand-back and the flush: finished work must not be delivered again.
    const reserveMs = Math.min(2000, Math.floor(shutdownTimeoutMs / 4));
    const workBudget = () => deadline - reserveMs - Date.now();
    const receivesEnded = this.scheduler.stop(workBudget());
    const finished = await within(Promise.all([receivesEnded, Promise.allSettled([...this.tasks])]), workBudget());
    if (!finished) {
      const left = this.keeper.unsettled();
      this.logger.warn({ inFlight: left.length }, 'Shutdown bound: aborting unfinished handlers and handing their messages back');
      this.handlers.abort();
      // A moment for the handlers to release their claims before their messages become visible.
      await within(Promise.allSettled([...this.tasks]), Math.min(1000, reserveMs / 2));
      const unsettled = this.keeper.unsettled();
      const handed = await within(this.keeper.handBackHeld(unsettled, this.logger), Math.max(0, deadline - Date.now()));
      if (handed) this.metrics.handedBack.inc({ when: 'in_flight' }, unsettled.length);
    }
    this.keeper.stopHeartbeat();
    await receivesEnded;
    const flushed = await within(this.keeper.flush(), Math.max(0, deadline - Date.now()));
    if (!flushed) this.logger.warn('Shutdown: pending deletes did not flush in time; those messages will be delivered again');
    this.metrics.paused.set(0);
    this.state = 'stopped';
    this.logger.info('SQS poller stopped');
  }

  private async receive(maxMessages: number, abortSignal: AbortSignal): Promise<Message[]> {
    const { sqs, queueUrl, waitTimeSeconds, visibilityTimeoutSeconds } = this.settings;
    const out = await this.metrics.call('ReceiveMessage', () =>
      sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: maxMessages,
          WaitTimeSeconds: waitTimeSeconds,
          VisibilityTimeout: visibilityTimeoutSeconds,
          MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp', 'MessageGroupId'],
          // The deprecated name as well (typed as queue attributes, hence All): local-aws-sqs reads only this one.
          AttributeNames: ['All'],
          MessageAttributeNames: ['All'],
        }),
        { abortSignal },
      ),
    );
    return out.Messages ?? [];
  }

  /** A receive returned after stop began: its messages go back at once instead of staying hidden. */
  private handBackReceived(messages: Message[]): void {
    const handles = messages.map((m) => m.ReceiptHandle).filter((h): h is string => h !== undefined);
    this.metrics.received.inc(handles.length);
    void this.keeper.handBack(handles, this.logger).then((n) => {
      this.metrics.handedBack.inc({ when: 'received' }, n);
      this.logger.info({ messages: n }, 'Shutdown: handed back messages a receive returned after stop');
    });
  }

  /** Start handling a received message; false when it took no slot (already in hand). */
  private begin(message: Message): boolean {
    const { MessageId: messageId, ReceiptHandle: receiptHandle } = message;
    if (!messageId || !receiptHandle) return false;
    this.metrics.received.inc();
    const held = this.keeper.hold(messageId, receiptHandle);
    if (!held) {
      this.logger.warn({ messageId }, 'Message delivered again while still being handled; keeping the newer receipt handle');
      return false;
    }
    this.metrics.inFlight.set(this.keeper.size);
    const task = this.handle(message, held)
      .catch((error) => this.logger.error({ err: error, messageId }, 'Unexpected error settling a message'))
      .finally(() => {
        this.keeper.release(held);
        this.tasks.delete(task);
        this.metrics.inFlight.set(this.keeper.size);
        this.scheduler.slotFreed();
      });
    this.tasks.add(task);
    return true;
  }

  private async handle(message: Message, held: HeldMessage): Promise<void> {
    const receiveCount = Number(message.Attributes?.ApproximateReceiveCount ?? '1') || 1;
    const log = this.logger.child({
      messageId: held.messageId,
      receiveCount,
      requestId: message.MessageAttributes?.[INGRESS_ATTRIBUTES.requestId]?.StringValue,
    });

    let received: ReceivedMessage;
    try {
      received = await this.toReceivedMessage(message, receiveCount);
    } catch (error) {
      return this.unresolvable(message, held, error, receiveCount, log);
    }

    const endTimer = this.metrics.handlerSeconds.startTimer();
    let outcome: HandlerOutcome;
    let label: HandlerOutcomeLabel;
    try {
      outcome = await this.settings.handler(received, { signal: this.handlers.signal });
      label = outcome.action;
    } catch (error) {
      const retryAfterMs = error instanceof RetryableError ? error.retryAfterMs : undefined;
      outcome = { action: 'retry', reason: reasonOf(error), ...(retryAfterMs !== undefined ? { delaySeconds: Math.ceil(retryAfterMs / 1000) } : {}) };
      label = 'error';
      if (!this.handlers.signal.aborted) log.warn({ err: error, reason: outcome.reason }, 'Handler failed; the message will be retried');
    }
    if (this.handlers.signal.aborted && outcome.action === 'retry') label = 'aborted';
    endTimer({ outcome: label });
    return this.settle(held, outcome, receiveCount, label === 'error' ? 'error' : 'handler', log);
  }

  /**
   * The claim check could not be read. A pointer that can never resolve (PermentError: missing
   * object, sha256 mismatch, foreign bucket, invalid pointer) is parked at once with its reason;
   * anything else (S3 unavailable) is retried.
   */
  private async unresolvable(message: Message, held: HeldMessage, error: unknown, receiveCount: number, log: Logger): Promise<void> {
    const reason = reasonOf(error);
    if (error instanceof PermanentError && this.settings.parker) {
      try {
        await this.settings.parker.park({ body: message.Body ?? '', attributes: message.MessageAttributes ?? {}, groupId: message.Attributes?.MessageGroupId, reason: error.reason });
        log.error({ reason, event: 'message_parked', detail: error.message }, 'Claim check can never resolve; message parked in the DLQ');
        return this.keeper.delete(held, log);
      } catch (parkError) {
        log.error({ err: parkError, reason }, 'Could not park the unresolvable claim check; the message will be retried');
      }
    } else {
      log.error({ err: error, reason }, 'Could not resolve the claim check; not handing the message to the handler');
    }
    return this.settle(held, { action: 'retry', reason }, receiveCount, 'claim_check', log);
  }

  private async toReceivedMessage(message: Message, receiveCount: number): Promise<ReceivedMessage> {
    const sqsBody = message.Body ?? '';
    const messageAttributes = message.MessageAttributes ?? {};
    const attributes = parseIngressAttributes(messageAttributes);
    let body: Buffer;
    if (attributes.claimCheck !== undefined) {
      if (!this.settings.claimChecks) throw new RetryableError('claim_check_unconfigured', 'Claim-check message but the poller has no ClaimCheckReader');
      body = await this.settings.claimChecks.resolve(attributes.claimCheck, sqsBody);
    } else {
      body = Buffer.from(sqsBody, 'utf8');
    }
    return {
      messageId: message.MessageId ?? '',
      receiveCount,
      ...(message.Attributes?.MessageGroupId ? { groupId: message.Attributes.MessageGroupId } : {}),
      body,
      attributes,
      original: { body: sqsBody, attributes: messageAttributes },
    };
  }

  private async settle(held: HeldMessage, outcome: HandlerOutcome, receiveCount: number, cause: RetryCause, log: Logger): Promise<void> {
    if (outcome.action === 'delete') {
      // Also after a hand-back: the work is done, and the receipt handle still deletes unless another worker took the message.
      return this.keeper.delete(held, log);
    }
    if (held.settled) {
      log.info({ reason: outcome.reason }, 'Handler ended after its message was handed back');
      return;
    }
    if (this.handlers.signal.aborted) {
      // Shutdown cut the handler short: nothing failed, so the message goes back at once, not after a backoff.
      await this.keeper.handBackHeld([held], log);
      this.metrics.handedBack.inc({ when: 'in_flight' });
      return;
    }
    const delaySeconds = retryDelaySeconds(outcome, receiveCount, { baseSeconds: this.settings.retryBaseSeconds, maxSeconds: this.settings.retryMaxSeconds });
    this.metrics.retried.inc({ cause });
    log.info({ delaySeconds, reason: outcome.reason }, 'Message left for a retry');
    await this.keeper.retryAfter(held, delaySeconds, log);
  }
}
