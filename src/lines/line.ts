import { z } from 'zod';

/**
 * `env:NAME` references reach only variables named with this prefix: a line (written by whoever may
 * register lines) must not be able to read the gateway's own secrets, such as WHATSAPP_ACCESS_TOKEN,
 * and send them to a flowUrl of its choosing.
 */
export const LINE_SECRET_ENV_PREFIX = 'WA_LINE_SECRET_';

/** Why an `env:` reference is refused, or undefined when it names an allowed variable. */
export function envReferenceProblem(ref: string): string | undefined {
  if (!ref.startsWith('env:')) return undefined;
  const name = ref.slice('env:'.length);
  if (/^WA_LINE_SECRET_[A-Za-z0-9_]+$/.test(name)) return undefined;
  return `env: references must name a variable starting with ${LINE_SECRET_ENV_PREFIX} (got env:${name})`;
}

/** A secret field holds a literal, `env:WA_LINE_SECRET_NAME`, or `secretsmanager:ARN`. */
export const secretRefSchema = z
  .string()
  .min(1)
  .superRefine((ref, ctx) => {
    const problem = envReferenceProblem(ref);
    if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
  });

export const birdFlowSchema = z.object({
  transport: z.literal('flow'),
  flowUrl: z.string().url(),
  /** Sent as the Bearer: the Flow trigger's own check. */
  flowSecret: secretRefSchema,
  /**
   * Optional key for the body's HMAC header (X-Wa-Ingress-Signature-256). It never travels, so the
   * Flow can verify that the body is ours and unchanged; without it no signature header is sent.
   */
  flowSigningSecret: secretRefSchema.optional(),
});

export const birdConversationsSchema = z.object({
  transport: z.literal('conversations'),
  workspaceId: z.string().min(1),
  channelId: z.string().min(1),
  accessKey: secretRefSchema,
  /**
   * The signing key of the Bird webhook subscription that posts this line's conversation events to
   * `POST /bird/webhooks/:lineId`; without it that URL refuses every call.
   */
  webhookSigningKey: secretRefSchema.optional(),
});

export const birdTargetSchema = z.discriminatedUnion('transport', [birdFlowSchema, birdConversationsSchema]);

/**
 * Conversation turns (flow lines only): a burst of messages from one contact reaches the flow as one
 * `turn` event, once the contact has been quiet for quietMs, or maxWaitMs after the first message,
 * or at maxMessages, whichever comes first. maxWaitMs is at most 15 minutes (SQS's longest delay,
 * the durable timer); maxMessages at most 50 (a turn is one DynamoDB item and one SQS message).
 */
export const turnSchema = z
  .object({
    quietMs: z.number().int().min(100).max(600_000),
    maxWaitMs: z.number().int().min(100).max(900_000),
    maxMessages: z.number().int().min(2).max(50),
  })
  .refine((t) => t.quietMs <= t.maxWaitMs, { message: 'quietMs must not exceed maxWaitMs', path: ['quietMs'] });

export const FORWARD_STATUSES = ['failed', 'all', 'none'] as const;
export type ForwardStatuses = (typeof FORWARD_STATUSES)[number];

/**
 * Whether the line's flow hears this outcome of a reply: a Meta status (`status`: its value) or
 * `outbound_failed`. Every other event always reaches it. Pure.
 */
export function forwardsToFlow(setting: ForwardStatuses | undefined, kind: string, status?: string): boolean {
  if (kind !== 'status' && kind !== 'outbound_failed') return true;
  switch (setting ?? 'failed') {
    case 'all':
      return true;
    case 'none':
      return false;
    case 'failed':
      return kind === 'outbound_failed' || status === 'failed';
  }
}

export const lineSchema = z.object({
  lineId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'lineId must be URL-safe: letters, digits, _ and -, at most 64'),
  phoneNumberId: z.string().regex(/^[0-9]{1,32}$/, 'phoneNumberId is the numeric id Meta sends in value.metadata.phone_number_id'),
  wabaId: z.string().min(1),
  displayPhoneNumber: z.string().min(1),
  appSecrets: z.array(secretRefSchema).default([]),
  verifyToken: secretRefSchema.optional(),
  accessToken: secretRefSchema.optional(),
  bird: birdTargetSchema,
  /** Bearer keys of the send API (`POST /v1/lines/:lineId/messages`); several at once, for rotation. */
  outboundKeys: z.array(secretRefSchema).default([]),
  /** Graph sends per second for this number, per worker process (Meta's default is 80/s). */
  sendRateLimit: z.number().positive().max(1000).optional(),
  /**
   * When an inbound message is handed to Bird: mark it read (blue ticks) and show the typing
   * indicator until the reply (or 25 s). Best effort; both on unless turned off.
   */
  presence: z
    .object({ markRead: z.boolean().default(true), typing: z.boolean().default(true) })
    .default({}),
  /** Off when absent. Only flow lines buffer turns (parseLines refuses it on a conversations line). */
  turn: turnSchema.optional(),
  /**
   * Handoff: how long the AI stays paused for a contact after the owner answered them from the
   * WhatsApp Business app (an smb_message_echoes webhook); each echo renews it.
   */
  handoff: z.object({ pauseMinutes: z.number().int().min(1).max(10_080).default(60) }).strict().optional(),
  /**
   * What the AI's free-form reply (a flow's `replies`, a Bird webhook) becomes when the contact's
   * window is known closed: Meta's template message. Without it such a reply is refused
   * (`outside_customer_service_window`, told to the flow) and Graph is never called.
   */
  windowFallbackTemplate: z
    .object({
      name: z.string().min(1).max(512),
      language: z.string().regex(/^[a-z]{2,3}(_[A-Za-z]{2,4})?$/, 'language is a Meta template language code such as "es_MX" or "en"'),
      components: z.array(z.object({ type: z.string().min(1) }).passthrough()).optional(),
    })
    .strict()
    .optional(),
  /**
   * Which outcomes of the line's replies wake its flow: `failed` (failed statuses and
   * `outbound_failed`), `all` (every status too: sent, delivered, read), `none`. Statuses not
   * forwarded still settle the reply's record and show in the console and journal.
   */
  forwardStatuses: z.enum(FORWARD_STATUSES).default('failed'),
  active: z.boolean().default(true),
});

/** A line as stored: secret fields still hold their references. */
export type Line = z.infer<typeof lineSchema>;
export type LineInput = z.input<typeof lineSchema>;
export type BirdTarget = z.infer<typeof birdTargetSchema>;
export type BirdFlowTarget = z.infer<typeof birdFlowSchema>;
export type BirdConversationsTarget = z.infer<typeof birdConversationsSchema>;
export type TurnPolicy = z.infer<typeof turnSchema>;
