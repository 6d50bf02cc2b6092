import type { WhatsAppEvent } from '../meta/event';
import type { ProblemReporter } from './problem-reporter';
import { problemsFromAccountEvent } from './problems';

/** What the worker tells about account-level webhooks (account_update, phone_number_quality_update). */
export interface AccountEventSink {
  noteAccountEvent(lineId: string, event: WhatsAppEvent): Promise<void>;
}

/** Raises or clears a line's problems at once from an account webhook, without waiting for the watcher's next round. */
export class AccountEventProblems implements AccountEventSink {
  constructor(private readonly reporter: ProblemReporter) {}

  async noteAccountEvent(lineId: string, event: WhatsAppEvent): Promise<void> {
    const verdict = problemsFromAccountEvent(event.field, event.raw);
    if (verdict) await this.reporter.apply(lineId, verdict, 'webhook');
  }
}
