import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { Counter, type Registry } from 'prom-client';
import type { FlowBody } from '../../bird/flow-request';
import { RetryableError } from '../../errors';
import type { Line, TurnPolicy } from '../../lines/line';
import { conversationKeyOf, sqsGroupId } from '../../meta/conversation';
import type { TurnCut, WhatsAppEvent } from '../../meta/event';
import type { Logger } from '../../observability/logger';
import { isFifoQueueUrl } from '../../queue/fifo';
import { stringAttributes } from '../../queue/message';
import { sqsCallsCounter } from '../../queue/sqs-calls';
import { bufferedBody, TURN_OBJECT, turnDue, turnKey, type TurnMessage } from './turn-message';
import { turnBufferKey, type DynamoTurnStore, type TurnBufferState } from './turn-store';
import type { TimerFire, TurnTimers } from './turn-timers';

export interface TurnBufferOptions {
  store: DynamoTurnStore;
  timers: Pick<TurnTimers, 'arm'>;
  sqs: SQSClient;
  /** The inbound queue: a cut turn goes back on it, in its conversation's FIFO group, as one `turn` event. */
  queueUrl: string;
  logger: Logger;
  registry: Registry;
  now?: () => number;
}

/** What the pipeline hands over instead of delivering a message alone. */
export interface BufferInput {
  line: Line;
  event: WhatsAppEvent;
  /** The message exactly as the flow would have received it alone (media included). */
  body: FlowBody;
}

/**
 * Conversation turns. On a flow line with `turn` set, a contact's messages are not delivered one by
 * one: each is appended to the conversation's durable buffer (DynamoTurnStore) and marked done under
 * its own key by the pipeline; a timer (TurnTimers) wakes the buffer, which cuts the turn when it is
 * due (quiet for quietMs, maxWaitMs since the first message, or maxMessages) and puts it on the
 * inbound queue as one message. The pipeline then delivers it as one `turn` event under the turn's
 * own key: claimed, delivered with that Idempotency-Key, marked COMPLETED, like any event.
 */
export class TurnBuffer {
  private readonly turns: Counter<'cut'>;
  private readonly buffered: Counter<'outcome'>;
  private readonly calls;
  private readonly fifo: boolean;

  constructor(private readonly options: TurnBufferOptions) {
    const registers = [options.registry];
    this.turns = new Counter({ name: 'wa_ingress_turns_total', help: 'Conversation turns cut and queued, by why (quiet, max_wait, max_messages)', labelNames: ['cut'], registers });
    this.buffered = new Counter({
      name: 'wa_ingress_turn_messages_total',
      help: 'Messages held for a turn (buffered; already_buffered: a retry of one taken before)',
      labelNames: ['outcome'],
      registers,
    });
    this.calls = sqsCallsCounter(options.registry);
    this.fifo = isFifoQueueUrl(options.queueUrl);
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** Messages from a contact, on a flow line with `turn` set. Statuses, errors and account events are never held. */
  holds(line: Line, event: WhatsAppEvent): boolean {
    return line.turn !== undefined && line.bird.transport === 'flow' && event.kind === 'message' && conversationKeyOf(event) !== undefined;
  }

  /** Durable once this resolves: the message is in the buffer and a timer will cut its turn. */
  async buffer({ line, event, body }: BufferInput): Promise<void> {
    const policy = line.turn!;
    const contact = conversationKeyOf(event)!;
    const pk = turnBufferKey(line.lineId, contact);
    const { appended, state } = await this.options.store.append({
      pk,
      lineId: line.lineId,
      groupId: sqsGroupId(`${event.phoneNumberId ?? line.phoneNumberId}:${contact}`),
      policy,
      message: { key: event.key, at: this.now(), body: JSON.stringify(bufferedBody(body)) },
    });
    this.buffered.inc({ outcome: appended ? 'buffered' : 'already_buffered' });
    this.options.logger.debug({ lineId: line.lineId, turnId: state.turnId, count: state.count, appended }, 'message held for its turn');
    if (state.count >= policy.maxMessages) return this.flush({ pk, armedAt: this.now() });
    // A retry of a message taken before arms a timer too: the crash may have come before its timer.
    return this.arm(state, policy);
  }

  /** A timer fired: send a sealed turn left by a crash, cut the turn in progress if due, else wake up later. Idempotent. */
  readonly flush = async (fire: TimerFire): Promise<void> => {
    for (let round = 0; round < 5; round++) {
      const state = await this.options.store.read(fire.pk);
      if (!state) return;
      if (state.sealed) {
        await this.enqueue(state, state.sealed);
        await this.options.store.unseal(state.pk, state.sealed.turnId);
        continue;
      }
      if (!state.turnId || state.count === 0 || state.firstAt === undefined || state.lastAt === undefined) return;
      const due = turnDue({ firstAt: state.firstAt, lastAt: state.lastAt, count: state.count }, state.policy, this.now());
      if ('nextAt' in due) return this.arm(state, state.policy);
      // Sealed (the buffer emptied in the same write); the next round puts it on the queue.
      if (await this.options.store.seal(state, turnMessageBody(state, due.cut))) {
        this.turns.inc({ cut: due.cut });
        this.options.logger.info({ lineId: state.lineId, turnId: state.turnId, messages: state.count, cut: due.cut }, 'turn cut');
      }
    }
  };

  private async arm(state: TurnBufferState, policy: TurnPolicy): Promise<void> {
    if (state.firstAt === undefined || state.lastAt === undefined) {
      if (state.sealed) await this.options.timers.arm(state.pk, this.now());
      return;
    }
    const due = turnDue({ firstAt: state.firstAt, lastAt: state.lastAt, count: state.count }, policy, this.now());
    await this.options.timers.arm(state.pk, 'nextAt' in due ? due.nextAt : this.now());
  }

  /** On FIFO the turn's id is its dedup id: a send repeated after a crash within 5 minutes is dropped, a later one is a dedupe duplicate. */
  private async enqueue(state: TurnBufferState, sealed: { turnId: string; body: string }): Promise<void> {
    this.calls.inc({ operation: 'SendMessage' });
    try {
      await this.options.sqs.send(
        new SendMessageCommand({
          QueueUrl: this.options.queueUrl,
          MessageBody: sealed.body,
          MessageAttributes: stringAttributes({ receivedAt: new Date(this.now()).toISOString(), requestId: `turn-${sealed.turnId}` }),
          ...(this.fifo ? { MessageGroupId: state.groupId, MessageDeduplicationId: sealed.turnId } : {}),
        }),
      );
    } catch (error) {
      throw new RetryableError('turn_buffer_unavailable', 'Could not put the cut turn on the inbound queue', { cause: error });
    }
  }
}

/** The turn message (turn-message.ts) of the buffer's turn in progress. */
function turnMessageBody(state: TurnBufferState, cut: TurnCut): string {
  const messages = state.items.map((item) => JSON.parse(item.body) as FlowBody);
  const first = messages[0];
  const message: TurnMessage = {
    object: TURN_OBJECT,
    turn: {
      id: state.turnId!,
      key: turnKey(state.lineId, state.turnId!),
      lineId: state.lineId,
      phoneNumberId: first?.line.phoneNumberId ?? '',
      contact: first?.contact ?? null,
      cut,
      timestamp: messages[messages.length - 1]?.timestamp,
      messages,
    },
  };
  return JSON.stringify(message);
}
