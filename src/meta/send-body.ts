import { z } from 'zod';

/**
 * Meta's send-message body (`POST /{phone_number_id}/messages`), without `to`, validated with the
 * limits Meta documents (Cloud API "Text messages", "Interactive reply buttons messages",
 * "Interactive messages" guide). Pure: used by the send API, a Flow's `replies` and the Graph stand-in.
 * Unknown extra fields pass through untouched: Meta adds options faster than we could list them.
 */

const text = (max: number) => z.string().min(1, 'must not be empty').max(max, `at most ${max} characters`);
const https = z
  .string()
  .url('must be a URL')
  .refine((v) => v.startsWith('https://'), 'must be an https URL');

/** A wa_id (digits, optionally with +) or a business-scoped user id (e.g. `US.1349…`). */
export const recipientSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(63, 'at most 63 characters')
  .regex(/^\+?[A-Za-z0-9._-]+$/, 'a wa_id (digits) or a business-scoped user id');

/** Media goes by `link` (https only) or by uploaded Graph media `id`, never both. */
function mediaObject(extra: z.ZodRawShape = {}) {
  return z
    .object({ link: https.optional(), id: z.string().regex(/^[0-9]{1,64}$/, 'a Graph media id (digits)').optional(), ...extra })
    .passthrough()
    .superRefine((media, ctx) => {
      if ((media.link === undefined) === (media.id === undefined)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'exactly one of link or id is required', path: ['link'] });
      }
    });
}

const caption = { caption: text(1024).optional() };

const replyButton = z.object({
  type: z.literal('reply'),
  reply: z.object({ id: text(256), title: text(20) }),
});

const header = z
  .object({
    type: z.enum(['text', 'image', 'video', 'document']),
    text: text(60).optional(),
    image: mediaObject().optional(),
    video: mediaObject().optional(),
    document: mediaObject({ filename: z.string().max(240).optional() }).optional(),
  })
  .passthrough()
  .superRefine((h, ctx) => {
    if (h[h.type] === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `header of type ${h.type} needs its ${h.type} field`, path: [h.type] });
  });
const textHeader = z.object({ type: z.literal('text'), text: text(60) });
const footer = z.object({ text: text(60) }).optional();

const listRow = z.object({ id: text(200), title: text(24), description: text(72).optional() });
const listSection = z.object({ title: text(24).optional(), rows: z.array(listRow).min(1, 'at least one row') });

const interactive = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('button'),
    header: header.optional(),
    body: z.object({ text: text(1024) }),
    footer,
    action: z.object({ buttons: z.array(replyButton).min(1, 'at least one button').max(3, 'at most 3 reply buttons') }),
  }),
  z.object({
    type: z.literal('list'),
    header: textHeader.optional(),
    body: z.object({ text: text(4096) }),
    footer,
    action: z
      .object({ button: text(20), sections: z.array(listSection).min(1, 'at least one section').max(10, 'at most 10 sections') })
      .superRefine((action, ctx) => {
        const rows = action.sections.reduce((n, s) => n + s.rows.length, 0);
        if (rows > 10) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `at most 10 rows across all sections (got ${rows})`, path: ['sections'] });
        if (action.sections.length > 1 && action.sections.some((s) => s.title === undefined)) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'every section needs a title when there are several', path: ['sections'] });
        }
      }),
  }),
  z.object({
    type: z.literal('cta_url'),
    header: header.optional(),
    body: z.object({ text: text(1024) }),
    footer,
    action: z.object({ name: z.literal('cta_url'), parameters: z.object({ display_text: text(20), url: https }) }),
  }),
]);

const contact = z
  .object({
    name: z.object({ formatted_name: text(1024) }).passthrough(),
    phones: z.array(z.object({ phone: z.string().optional(), wa_id: z.string().optional(), type: z.string().optional() }).passthrough()).optional(),
  })
  .passthrough();

/** The per-type object of each supported message type. */
const TYPE_OBJECTS = {
  text: z.object({ body: text(4096), preview_url: z.boolean().optional() }),
  image: mediaObject(caption),
  audio: mediaObject(),
  video: mediaObject(caption),
  document: mediaObject({ ...caption, filename: z.string().max(240).optional() }),
  sticker: mediaObject(),
  interactive,
  template: z
    .object({
      name: text(512),
      language: z.object({ code: z.string().min(2).max(15), policy: z.literal('deterministic').optional() }),
      components: z.array(z.object({ type: z.string().min(1) }).passthrough()).optional(),
    })
    .passthrough(),
  reaction: z.object({ message_id: z.string().min(1, 'must not be empty'), emoji: z.string().max(16) }),
  location: z.object({
    latitude: z.number().min(-90).max(90),
    longitude: z.number().min(-180).max(180),
    name: z.string().max(1024).optional(),
    address: z.string().max(1024).optional(),
  }),
  contacts: z.array(contact).min(1, 'at least one contact'),
} as const;

export type SendMessageType = keyof typeof TYPE_OBJECTS;
export const SEND_MESSAGE_TYPES = Object.keys(TYPE_OBJECTS) as SendMessageType[];

const envelope = z
  .object({
    messaging_product: z.literal('whatsapp').optional(),
    recipient_type: z.literal('individual').optional(),
    type: z.enum(SEND_MESSAGE_TYPES as [SendMessageType, ...SendMessageType[]]),
    context: z.object({ message_id: z.string().min(1, 'must not be empty') }).optional(),
    biz_opaque_callback_data: z.never({ invalid_type_error: 'is set by the gateway (the outbound id)' }).optional(),
  })
  .passthrough();

export interface SendBodyIssue {
  /** Dotted path into the body, e.g. `interactive.action.buttons` or `text.body`. */
  path: string;
  message: string;
}

export type SendBodyCheck = { ok: true; body: Record<string, unknown> & { type: SendMessageType } } | { ok: false; issues: SendBodyIssue[] };

function issuesOf(error: z.ZodError, prefix: (string | number)[] = []): SendBodyIssue[] {
  return error.issues.map((issue) => ({ path: [...prefix, ...issue.path].join('.') || '(body)', message: issue.message }));
}

/**
 * Checks a send body without `to` (a Flow reply) or with it (`allowTo`: the send API strips it
 * itself). Returns the body as given (extra fields kept), or every problem with its field path.
 */
export function checkSendBody(input: unknown): SendBodyCheck {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return { ok: false, issues: [{ path: '(body)', message: 'must be a JSON object' }] };
  const head = envelope.safeParse(input);
  if (!head.success) return { ok: false, issues: issuesOf(head.error) };
  const type = head.data.type;
  const object = (input as Record<string, unknown>)[type];
  if (object === undefined) return { ok: false, issues: [{ path: type, message: `required for type ${type}` }] };
  const inner = TYPE_OBJECTS[type].safeParse(object);
  if (!inner.success) return { ok: false, issues: issuesOf(inner.error, [type]) };
  return { ok: true, body: input as Record<string, unknown> & { type: SendMessageType } };
}

/** One line naming every problem, for logs and error messages. */
export function describeIssues(issues: SendBodyIssue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join('; ');
}
