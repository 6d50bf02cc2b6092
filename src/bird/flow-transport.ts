import type { BirdFlowTarget } from '../lines/line';
import type { BirdAnswer, BirdDelivery } from './delivery';
import { FLOW_SIGNATURE_HEADER, buildFlowBody, encodeFlowBody, signFlowBody } from './flow-request';
import type { HostBreakers } from './host-breakers';
import type { HttpCallPolicy } from './http-call-policy';

/** A line's flow target with its secrets resolved. */
export type ResolvedFlowTarget = BirdFlowTarget;

/**
 * The flow transport: POST the normalised event to the line's Flow HTTP trigger, with the Bearer
 * flowSecret, the Idempotency-Key and, when the line has a flowSigningSecret, an HMAC of the body
 * under that key. The signing key never travels, so the signature proves the body came from us;
 * a signature under the Bearer secret would prove nothing to whoever saw the request.
 */
export class FlowTransport {
  constructor(
    private readonly policy: HttpCallPolicy,
    private readonly breakers: HostBreakers,
  ) {}

  /** A synchronous Flow answers with its `replies`: the parsed body goes back to the pipeline. */
  async deliver(delivery: BirdDelivery, target: ResolvedFlowTarget): Promise<BirdAnswer> {
    const raw = encodeFlowBody(buildFlowBody(delivery));
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      Accept: 'application/json',
      Authorization: `Bearer ${target.flowSecret}`,
      'Idempotency-Key': delivery.event.key,
    };
    if (target.flowSigningSecret !== undefined) headers[FLOW_SIGNATURE_HEADER] = signFlowBody(target.flowSigningSecret, raw);
    const { status, body } = await this.breakers.run(new URL(target.flowUrl).host, () =>
      this.policy.call({ transport: 'flow', method: 'POST', url: target.flowUrl, headers, body: raw, signal: delivery.signal }),
    );
    return { flowResponse: body, status };
  }
}
