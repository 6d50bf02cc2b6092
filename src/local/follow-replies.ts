import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAwsClients } from '../aws/clients';
import type { Config } from '../config/config';
import { embeddedAwsSettings } from '../config/embedded-state';
import { DynamoLineStore } from '../lines/store';
import { DynamoOutboundStore } from '../outbound/dynamo-outbound-store';
import { replyKey } from '../outbound/flow-replies';
import { outboundId, type OutboundRecord } from '../outbound/record';

export interface FollowedMessage {
  /** The inbound event key (it reached Bird). */
  key: string;
  phoneNumberId: string;
  name: string;
}

export interface FollowedReply {
  name: string;
  id: string;
  /** The reply's text as it left for Graph (from the outbox), when it got there. */
  text?: string;
  /** The record's journey: queued, sending, sent, delivered, read… */
  steps: string[];
  status?: OutboundRecord['status'];
}

/**
 * The other half of the local loop, for `npm run simulate`: the echo AI answered each message with
 * a synchronous reply (`reply:<event key>:0`); follow it to the Graph stand-in's outbox and its
 * record until Meta's (stand-in) statuses have settled it as `read`.
 */
export async function followReplies(config: Config, messages: FollowedMessage[], deadline: number): Promise<FollowedReply[]> {
  const clients = createAwsClients(embeddedAwsSettings(config));
  try {
    const lines = new DynamoLineStore({ documents: clients.documents, tableName: config.dynamodb.linesTable });
    const store = new DynamoOutboundStore({ documents: clients.documents, tableName: config.dynamodb.outboundTable, retentionDays: config.outbound.retentionDays });
    const outbox = join(config.dataDir, 'whatsapp-outbox.jsonl');
    const replies: FollowedReply[] = [];
    for (const message of messages) {
      const line = await lines.getByPhoneNumberId(message.phoneNumberId);
      if (line) replies.push({ name: message.name, id: outboundId(line.lineId, replyKey(message.key, 0)), steps: [] });
    }
    const settled = (r: FollowedReply) => r.status === 'read' || r.status === 'failed';
    while (Date.now() < deadline && !replies.every(settled)) {
      await new Promise((r) => setTimeout(r, 250));
      const sent = outboxTexts(outbox);
      for (const reply of replies) {
        const record = await store.get(reply.id);
        if (!record) continue;
        reply.status = record.status;
        reply.steps = record.journey.map((j) => j.step);
        reply.text ??= sent.get(reply.id);
      }
    }
    return replies;
  } finally {
    clients.destroy();
  }
}

/** Outbox lines (one per send the Graph stand-in accepted) by `biz_opaque_callback_data`: the text sent. */
function outboxTexts(file: string): Map<string, string> {
  const texts = new Map<string, string>();
  if (!existsSync(file)) return texts;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      const sent = JSON.parse(line) as { biz_opaque_callback_data?: string; type?: string; text?: { body?: string } };
      if (sent.biz_opaque_callback_data) texts.set(sent.biz_opaque_callback_data, sent.text?.body ?? `[${sent.type}]`);
    } catch {
      // a line being written
    }
  }
  return texts;
}
