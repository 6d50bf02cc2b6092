import { objectOrUndefined } from '../meta/untrusted-json';

/**
 * What a synchronous Flow may answer (ARCHITECTURE §2): `{"replies": [<Meta send bodies without to>]}`.
 * Anything else in the body is Bird's own acknowledgement and ignored.
 */
export type FlowReplies = { replies: readonly unknown[] } | { replies: undefined } | { invalid: string };

export function flowRepliesOf(flowResponse: unknown): FlowReplies {
  const body = objectOrUndefined(flowResponse);
  if (!body || body.replies === undefined || body.replies === null) return { replies: undefined };
  if (!Array.isArray(body.replies)) return { invalid: 'replies: must be an array of send bodies' };
  return { replies: Array.from(body.replies) };
}
