import { z } from 'zod';

/** A secret field holds a literal, `env:NAME`, or `secretsmanager:ARN`. */
export const secretRefSchema = z.string().min(1);

export const birdFlowSchema = z.object({
  transport: z.literal('flow'),
  flowUrl: z.string().url(),
  flowSecret: secretRefSchema,
});

export const birdConversationsSchema = z.object({
  transport: z.literal('conversations'),
  workspaceId: z.string().min(1),
  channelId: z.string().min(1),
  accessKey: secretRefSchema,
});

export const birdTargetSchema = z.discriminatedUnion('transport', [birdFlowSchema, birdConversationsSchema]);

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
  active: z.boolean().default(true),
});

/** A line as stored: secret fields still hold their references. */
export type Line = z.infer<typeof lineSchema>;
export type LineInput = z.input<typeof lineSchema>;
export type BirdTarget = z.infer<typeof birdTargetSchema>;
export type BirdFlowTarget = z.infer<typeof birdFlowSchema>;
export type BirdConversationsTarget = z.infer<typeof birdConversationsSchema>;
